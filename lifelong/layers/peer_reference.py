"""References for testing and benchmarking PEER: brute-force top-k and Algorithm 1 literally.

``ReferencePEER`` is what a straightforward implementation of He (2024), Algorithm 1 does:
product-key retrieval, dense ``nn.Embedding`` expert tables (dense gradients), einsum.
Trained with a plain ``torch.optim.Adam`` over every parameter, its step reads and writes
all N experts; it is the baseline of ``benchmarks/peer_speed.py`` and the oracle that the
fast layer is checked against. It uses the paper's expert index ``i1·n + i2``.
"""

import torch
from torch import Tensor, nn

from .activations import get_activation
from .peer import SCORE_FUNCTIONS, query_network, sub_keys_for
from .product_keys import id_to_pair


def brute_force_topk(queries: Tensor, keys: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Exact top-k of ``queries @ keys.T`` over every key: (..., key_dim) -> (..., k) twice."""
    return (queries @ keys.t()).topk(k, dim=-1)


class ReferencePEER(nn.Module):
    """PEER exactly as Algorithm 1 of the paper writes it (no growth)."""

    def __init__(
        self,
        dim: int,
        *,
        num_experts: int,
        heads: int = 8,
        topk: int = 16,
        key_dim: int | None = None,
        activation: str = "gelu",
        score: str = "softmax",
        query_batchnorm: bool = True,
    ):
        super().__init__()
        self.n = sub_keys_for(num_experts)
        self.heads, self.topk = heads, topk
        self.key_dim = dim if key_dim is None else key_dim
        self.activation = get_activation(activation).forward
        self.score = SCORE_FUNCTIONS[score]
        self.query_proj = query_network(
            dim, heads=heads, key_dim=self.key_dim, batchnorm=query_batchnorm
        )
        half = self.key_dim // 2
        self.sub_keys = nn.Parameter(
            torch.empty(2, self.n, half).uniform_(-(half**-0.5), half**-0.5)
        )
        self.w_down_embed = nn.Embedding(num_experts, dim)
        self.w_up_embed = nn.Embedding(num_experts, dim)
        nn.init.normal_(self.w_down_embed.weight, std=dim**-0.5)
        nn.init.normal_(self.w_up_embed.weight, std=dim**-0.5)

    def get_indices(self, query: Tensor) -> tuple[Tensor, Tensor]:
        """query (..., h, dk) -> scores, indices (..., h, k) over all n² product keys."""
        k, half = self.topk, self.key_dim // 2
        s1, i1 = (query[..., :half] @ self.sub_keys[0].t()).topk(k, dim=-1)
        s2, i2 = (query[..., half:] @ self.sub_keys[1].t()).topk(k, dim=-1)
        cand = (s1.unsqueeze(-1) + s2.unsqueeze(-2)).flatten(-2)  # (..., h, k*k)
        scores, best = cand.topk(k, dim=-1)
        indices = i1.gather(-1, best // k) * self.n + i2.gather(-1, best % k)
        return scores, indices

    def forward(self, x: Tensor) -> Tensor:
        """x (b, t, d) or any (..., d) -> same shape."""
        lead = x.shape[:-1]
        query = self.query_proj(x.reshape(-1, x.shape[-1])).view(*lead, self.heads, self.key_dim)
        scores, indices = self.get_indices(query)  # (..., h, k)
        w_down = self.w_down_embed(indices)  # (..., h, k, d)
        w_up = self.w_up_embed(indices)
        h = torch.einsum("...d,...hkd->...hk", x, w_down)
        h = self.activation(h)
        h = h * self.score(scores)
        return torch.einsum("...hk,...hkd->...d", h, w_up)

    @torch.no_grad()
    def load_from(self, layer) -> "ReferencePEER":
        """Copy the weights of a (non-grown or grown) ``PEER`` with the same sizes."""
        n = layer.num_sub_keys
        assert n == self.n, f"reference has {self.n} sub-keys per side, layer has {n}"
        self.query_proj.load_state_dict(layer.query.state_dict())
        self.sub_keys[0].copy_(torch.cat(list(layer.sub_keys1)))
        self.sub_keys[1].copy_(torch.cat(list(layer.sub_keys2)))
        # Shell-order id of the pair (i1, i2) -> paper index i1*n + i2.
        i1, i2 = id_to_pair(torch.arange(n * n))
        paper = i1 * n + i2
        self.w_down_embed.weight[paper] = torch.cat(list(layer.down))
        self.w_up_embed.weight[paper] = torch.cat(list(layer.up))
        return self

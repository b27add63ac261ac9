"""Expert-choice MoE (Zhou et al. 2022, "Mixture-of-Experts with Expert Choice Routing").

The router scores ``S = softmax(X·W_g)`` (T x N, softmax over the experts, §3.1 Eq. 1);
then each expert picks its top-C tokens by its column of S, ``C = round(cf · T / N)``,
and a token's output is the sum over the experts that picked it of
``S[t, e] · e(x_t)``. Every expert processes exactly C tokens, so the load is balanced by
construction and there is no auxiliary loss; a token may be picked by several experts, or
by none (it then passes on through the residual connection, like a dropped token).

Not causal: the choice depends on every token of the batch, later positions included, so
this layer cannot decode token by token (docs/design.md §3); it suits encoders and classification.
"""

import torch
from torch import Tensor

from ..checks import positive_number
from .moe_common import StagedMoE, capacity


class ExpertChoiceMoE(StagedMoE):
    """Expert-choice MoE (..., dim) -> (..., dim) with growth.

    Args:
        dim: model width.
        num_experts: initial expert count N.
        hidden: each expert is an FFN dim -> hidden -> dim without biases.
        capacity_factor: cf > 0, the average number of experts per token: each of the N
            experts the batch may use takes ``C = round(cf · T / N)`` of its T tokens
            (rounded half up, clipped to [1, T]). The paper's default is 2.
        activation: expert non-linearity, "gelu" or "relu".

    The routing hook reports, per token, the experts that picked it (in expert order),
    padded with -1 (gate 0) to the largest count in the batch; a token no expert picked
    has a row of -1. ``aux_loss`` is always None.
    """

    routing = "expert_choice"

    def __init__(
        self,
        dim: int,
        *,
        num_experts: int,
        hidden: int,
        capacity_factor: float = 2.0,
        activation: str = "gelu",
    ):
        capacity_factor = positive_number("capacity_factor", capacity_factor)
        super().__init__(dim, num_experts=num_experts, hidden=hidden, activation=activation)
        self.capacity_factor = capacity_factor

    def active_params_per_token(self) -> int:
        """The router plus, on average, capacity_factor experts of 2·dim·hidden weights
        (N experts each take cf·T/N of T tokens)."""
        per_expert = 2 * self.dim * self.hidden
        return self.dim * self.num_experts + round(self.capacity_factor * per_expert)

    def _dispatch(self, logits: Tensor) -> tuple[Tensor, Tensor, None]:
        """(M, n) logits -> (M, K) expert ids per token (-1 padded), (M, K) gates, None."""
        M, n = logits.shape
        probs = torch.softmax(logits, dim=-1)  # (M, n) = S
        C = capacity(self.capacity_factor, M, n)
        # A token whose stage lacks expert e (logit -inf) scores -1: below every real score,
        # and never picked (a score of exactly 0 from underflow stays a valid pick).
        score = probs.detach().masked_fill(torch.isinf(logits), -1.0)
        value, token = score.topk(C, dim=0)  # (C, n): expert e's C best tokens in column e
        picked = (value >= 0).t()  # (n, C), expert-major
        expert = torch.arange(n, device=logits.device)[:, None].expand(n, C)[picked]  # (A,)
        token = token.t()[picked]  # (A,)
        # Group by token (stable: each token's experts stay in ascending order).
        order = torch.argsort(token, stable=True)
        token, expert = token[order], expert[order]
        counts = torch.bincount(token, minlength=M)  # (M,) experts per token
        K = max(1, int(counts.max()))
        slot = (
            torch.arange(token.numel(), device=logits.device) - (counts.cumsum(0) - counts)[token]
        )
        idx = torch.full((M, K), -1, dtype=torch.long, device=logits.device)
        idx[token, slot] = expert
        gates = probs.new_zeros(M, K).index_put((token, slot), probs[token, expert])
        return idx, gates, None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, capacity_factor={self.capacity_factor}"

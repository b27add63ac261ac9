"""PKM: the product-key memory of Lample et al. (2019), "Large Memory Layers with Product
Keys", with the same growth as PEER.

Retrieval is PEER's (exact product-key top-k, h heads, query BatchNorm); each memory slot
holds one value vector, and the output is the router-weighted sum of the retrieved values
(an ``EmbeddingBag`` with per-sample weights): ``f(x) = Σ_h Σ_{i in topk_h} g_i(x)·v_i``.
PEER generalises this: its experts ``σ(u_i·x)·v_i`` also look at x (He 2024, §2).
"""

from torch import Tensor

from .peer import PEER
from .value_readout import value_readout


class PKM(PEER):
    """A product-key memory (..., dim) -> (..., dim) that can grow new memory slots.

    Args as ``PEER`` minus ``activation``; the paper's setting is heads=4, topk=32 with
    query BatchNorm. ``grow``, ``stage``-restricted retrieval, routing hooks and
    ``LazyAdamW`` work exactly as for PEER; the only table is ``values``.
    """

    TABLES = ("values",)

    def __init__(
        self,
        dim: int,
        *,
        num_experts: int,
        heads: int = 4,
        topk: int = 32,
        key_dim: int | None = None,
        score: str = "softmax",
        query_batchnorm: bool = True,
        sparse_grad: bool = True,
    ):
        super().__init__(
            dim,
            num_experts=num_experts,
            heads=heads,
            topk=topk,
            key_dim=key_dim,
            score=score,
            query_batchnorm=query_batchnorm,
            sparse_grad=sparse_grad,
        )

    def _mix(self, x: Tensor, idx: Tensor, gates: Tensor) -> Tensor:
        (values,) = self._tables()
        return value_readout(
            idx,
            gates,
            values=values,
            chunks=list(self.values),
            bounds=self._bounds(),
            sparse_grad=self.sparse_grad,
        )

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_experts={self.num_experts}, heads={self.heads}, "
            f"topk={self.topk}, key_dim={self.key_dim}, stages={self.stage_sub_keys}, "
            f"score={self.score}, sparse_grad={self.sparse_grad}"
        )

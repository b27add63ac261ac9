"""PKM: the product-key memory of Lample et al. (2019), "Large Memory Layers with Product
Keys", with the same growth as PEER (docs/design.md §1).

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

    Args:
        dim, num_experts, heads, topk: as ``PEER``; the paper's setting is heads=4, topk=32.
        options: PEER's ``key_dim``, ``score``, ``query_batchnorm`` and ``sparse_grad``.
            There is no ``activation``: a slot is a value, not an expert.

    ``grow``, ``stage``-restricted retrieval, routing hooks and ``LazyAdamW`` work exactly
    as for PEER; the only table is ``values``.
    """

    TABLES = ("values",)

    def __init__(self, dim: int, *, num_experts: int, heads: int = 4, topk: int = 32, **options):
        if "activation" in options:
            raise TypeError("PKM takes no activation: its memory slots are values, not experts")
        super().__init__(dim, num_experts=num_experts, heads=heads, topk=topk, **options)

    def _mix(self, x: Tensor, idx: Tensor, gates: Tensor) -> Tensor:
        (values,) = self._tables()
        return value_readout(
            idx,
            gates,
            values=values,
            chunks=list(self.values),
            bounds=self._row_bounds(),
            sparse_grad=self.sparse_grad,
        )

    def extra_repr(self) -> str:
        return super().extra_repr().replace(f"activation={self.activation}, ", "")

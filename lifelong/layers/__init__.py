"""Expert layers. ``PEER`` is the growing product-key expert layer; ``PKM`` the product-key
memory it generalises; ``TokenChoiceMoE`` and ``ExpertChoiceMoE`` the classic MoE
baselines. All grow the same way (``grow``, stages, routing hooks)."""

from .expert_choice import ExpertChoiceMoE
from .moe import TokenChoiceMoE
from .peer import PEER
from .peer_reference import ReferencePEER, brute_force_topk
from .pkm import PKM

__all__ = [
    "PEER",
    "PKM",
    "ExpertChoiceMoE",
    "ReferencePEER",
    "TokenChoiceMoE",
    "brute_force_topk",
]

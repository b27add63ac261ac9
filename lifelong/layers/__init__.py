"""Growing layers. ``PEER`` is the growing product-key expert layer; ``PKM`` the product-key
memory it generalises; ``TokenChoiceMoE`` and ``ExpertChoiceMoE`` the classic MoE
baselines; ``DenseFFN`` the dense one; ``ShardedPEER`` a PEER whose expert rows are
spread over the ranks of a process group. All keep the ``GrowingLayer`` contract (stages,
``grow``, routing hooks, managed parameters) through ``StagedLayer``, and ``LAYERS``
names them for run configs (docs/extending.md)."""

from .activations import ACTIVATIONS, get_activation
from .contract import GrowingLayer, managed_parameters
from .dense import MLP, DenseFFN
from .expert_choice import ExpertChoiceMoE
from .moe import TokenChoiceMoE
from .peer import PEER
from .peer_reference import ReferencePEER, brute_force_topk
from .pkm import PKM
from .registry import LAYERS, LayerEntry, LayerRegistry
from .sharded_peer import ShardedPEER
from .staged import StagedLayer

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "MLP",
    "PEER",
    "PKM",
    "DenseFFN",
    "ExpertChoiceMoE",
    "GrowingLayer",
    "LayerEntry",
    "LayerRegistry",
    "ReferencePEER",
    "ShardedPEER",
    "StagedLayer",
    "TokenChoiceMoE",
    "brute_force_topk",
    "get_activation",
    "managed_parameters",
]

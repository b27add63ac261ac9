"""Models with pluggable growing layers, and the Avalanche wrapper that grows them.

- ``GrowingExperts``: a growing layer with a growth policy and task-aware routing.
- ``MLPClassifier``: stem -> residual expert FFN -> single or per-task heads.
- ``ByteTransformerLM``: a causal byte-level Transformer with expert FFNs in some blocks.
- ``stage_mixture_log_probs``: a byte LM's stages mixed by their posterior given the prefix.
"""

from .growing import (
    GROWTH_POLICIES,
    ROUTINGS,
    GrowingExperts,
    grows_at,
    growths_over,
    routed_as_trained,
)
from .heads import TaskHeads
from .mlp import MLPClassifier
from .stage_mixture import stage_mixture_log_probs
from .task_model import TaskModel
from .transformer import Block, ByteTransformerLM, CausalSelfAttention, LMCrossEntropy

__all__ = [
    "routed_as_trained",
    "GROWTH_POLICIES",
    "ROUTINGS",
    "Block",
    "ByteTransformerLM",
    "CausalSelfAttention",
    "GrowingExperts",
    "LMCrossEntropy",
    "MLPClassifier",
    "TaskHeads",
    "TaskModel",
    "grows_at",
    "growths_over",
    "stage_mixture_log_probs",
]

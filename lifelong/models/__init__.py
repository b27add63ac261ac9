"""Models with pluggable growing layers, and the Avalanche wrapper that grows them.

- ``GrowingExperts``: a growing layer with a growth policy and task-aware routing.
- ``MLPClassifier``: stem -> residual expert FFN -> single or per-task heads.
- ``ByteTransformerLM``: a causal byte-level Transformer with expert FFNs in some blocks.
- ``CrossEntropy``: the task loss, with optional label smoothing.
- ``stage_mixture_log_probs``: a byte LM's stages mixed by their posterior given the prefix.
"""

from .cross_entropy import CrossEntropy
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
from .transformer import Block, ByteTransformerLM, CausalSelfAttention

__all__ = [
    "routed_as_trained",
    "GROWTH_POLICIES",
    "ROUTINGS",
    "Block",
    "ByteTransformerLM",
    "CausalSelfAttention",
    "CrossEntropy",
    "GrowingExperts",
    "MLPClassifier",
    "TaskHeads",
    "TaskModel",
    "grows_at",
    "growths_over",
    "stage_mixture_log_probs",
]

"""Continual-learning and expert-usage metrics.

- ``continual``: summaries of an experience matrix R[i][j] (average, forgetting, BWT, FWT).
- ``experts``: expert usage and KL non-uniformity of router mass, per growth stage.
- ``plugins``: Avalanche plugin metrics collecting both during a run.
- ``plots``: PNG figures of matrices, forgetting curves and usage maps.
"""

from .continual import per_experience_forgetting, summarize_matrix
from .experts import expert_usage, kl_nonuniformity, pool_grid, stage_slices, usage_grid
from .moe_metric import (
    MoEMetric,
    dropped_token_pct,
    tokens_per_expert,
    tokens_per_expert_cv,
)
from .names import format_metric_name, strategy_metric_name
from .plots import curves_png, matrix_png, usage_png, usage_rgb
from .plugins import ExperienceMatrix, ExpertUsageMetric, TrainingProgress, expert_layers

__all__ = [
    "ExperienceMatrix",
    "ExpertUsageMetric",
    "MoEMetric",
    "dropped_token_pct",
    "tokens_per_expert",
    "tokens_per_expert_cv",
    "TrainingProgress",
    "curves_png",
    "expert_layers",
    "expert_usage",
    "format_metric_name",
    "kl_nonuniformity",
    "matrix_png",
    "per_experience_forgetting",
    "pool_grid",
    "stage_slices",
    "strategy_metric_name",
    "summarize_matrix",
    "usage_grid",
    "usage_png",
    "usage_rgb",
]

"""Continual-learning and expert-usage metrics.

- ``continual``: summaries of an experience matrix R[i][j] (average, forgetting, BWT, FWT).
- ``experts``: expert usage and KL non-uniformity of router mass, per growth stage.
- ``plugins``: Avalanche plugin metrics collecting both during a run (the matrix, expert
  usage and MoE load; the last two share ``RoutingMetric``).
- ``task_inference``: how often inferred routing picks the right experience.
- ``lr_metric``: the learning rate each training experience ran at.
- ``registry``: ``RUN_METRICS``, the metrics every run collects and reports.
- ``plots``: PNG figures of matrices, forgetting curves, usage maps and paired seeds;
  ``usage_image``: the usage map TensorBoard shows.
- ``names``: metric names, all under ``lifelong/``; ``tensorboard_layout``: the
  custom-scalars charts over them.
"""

from .continual import per_experience_forgetting, summarize_matrix
from .experts import expert_usage, kl_nonuniformity, kl_normalized, pool_grid, usage_grid
from .lr_metric import LearningRateMetric
from .moe_metric import tokens_per_expert
from .names import NAMESPACE, format_metric_name, strategy_metric_name
from .plots import curves_png, matrix_png, paired_png, usage_png, usage_rgb
from .plugins import (
    ExperienceMatrix,
    ExpertUsageMetric,
    MoEMetric,
    RoutingMetric,
    TrainingProgress,
    expert_layers,
)
from .registry import RUN_METRICS, run_metrics
from .task_inference import TaskInferenceMetric
from .tensorboard_layout import custom_scalars_layout
from .usage_image import usage_image

__all__ = [
    "NAMESPACE",
    "RUN_METRICS",
    "ExperienceMatrix",
    "ExpertUsageMetric",
    "LearningRateMetric",
    "MoEMetric",
    "RoutingMetric",
    "TaskInferenceMetric",
    "TrainingProgress",
    "curves_png",
    "custom_scalars_layout",
    "expert_layers",
    "expert_usage",
    "format_metric_name",
    "kl_nonuniformity",
    "kl_normalized",
    "matrix_png",
    "paired_png",
    "per_experience_forgetting",
    "pool_grid",
    "run_metrics",
    "strategy_metric_name",
    "summarize_matrix",
    "tokens_per_expert",
    "usage_grid",
    "usage_image",
    "usage_png",
    "usage_rgb",
]

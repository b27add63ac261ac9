"""The Avalanche plugin metrics of this package, importable from one place.

Pass them to ``avalanche.training.plugins.EvaluationPlugin`` next to the loggers.
"""

from .matrix_metric import ExperienceMatrix
from .moe_metric import MoEMetric
from .progress import TrainingProgress
from .routing_metric import RoutingMetric, expert_layers
from .usage_metric import ExpertUsageMetric

__all__ = [
    "ExperienceMatrix",
    "ExpertUsageMetric",
    "MoEMetric",
    "RoutingMetric",
    "TrainingProgress",
    "expert_layers",
]

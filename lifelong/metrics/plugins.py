"""The Avalanche plugin metrics of this package, importable from one place.

Pass them to ``avalanche.training.plugins.EvaluationPlugin`` next to the loggers.
"""

from .matrix_metric import ExperienceMatrix
from .progress import TrainingProgress
from .usage_metric import ExpertUsageMetric, expert_layers

__all__ = ["ExperienceMatrix", "ExpertUsageMetric", "TrainingProgress", "expert_layers"]

"""Regularisers of the parameters that growth does not protect (docs/regularizers.md).

plugin = RegularizationPlugin([build_regularizer("ewc")], weights=[100.0])
strategy = Naive(model=model, ..., plugins=[plugin])
"""

from .base import ExperienceData, Regularizer
from .distill import DistillationRegularizer, distillation_kl
from .ewc import EWCRegularizer, empirical_fisher
from .gen_distill import GenerativeDistillation
from .l2 import L2Regularizer
from .l2_sp import L2SPRegularizer
from .plugin import RegularizationPlugin, experience_data
from .registry import REGULARIZERS, build_regularizer
from .shared import anchored, shared_parameters, snapshot, weighted_distance
from .si import SIRegularizer

__all__ = [
    "REGULARIZERS",
    "DistillationRegularizer",
    "EWCRegularizer",
    "ExperienceData",
    "GenerativeDistillation",
    "L2Regularizer",
    "L2SPRegularizer",
    "RegularizationPlugin",
    "Regularizer",
    "SIRegularizer",
    "anchored",
    "build_regularizer",
    "distillation_kl",
    "empirical_fisher",
    "experience_data",
    "shared_parameters",
    "snapshot",
    "weighted_distance",
]

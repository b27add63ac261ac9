"""Avalanche plugins that a run adds to its strategy, usable in any Avalanche code.

- ``FreezeSharedPlugin``: freeze shared parameters (or named ones) after the first
  experience.
- ``AuxLossPlugin``: add the layers' auxiliary losses (MoE load balancing) to the loss.
- ``FiniteLossPlugin``: stop at the first NaN/Inf loss, before it reaches the weights.
- ``LRSchedulePlugin``: re-warm and decay the learning rate in every experience
  (``train.schedule``).
- ``PrecisionPlugin``: bf16 autocast for every forward pass (``train.precision=bf16``).
- ``IndexedExperienceBuffer``: a replay memory that a checkpoint can hold.
- ``FreshOptimizerPlugin``: start every experience with a fresh optimizer state
  (``train.reset_optimizer``).
- ``WeightAveragePlugin``: end every experience with the moving average of the trained
  weights (``train.ema``).
- ``StageStatisticsPlugin``: fill the stage selectors of inferred routing after each
  experience.
"""

from .aux_loss import AuxLossPlugin
from .finite_loss import FiniteLossPlugin, NonFiniteLossError
from .freeze import SHARED, FreezeSharedPlugin
from .fresh_optimizer import FreshOptimizerPlugin
from .lr_schedule import SCHEDULES, LRSchedulePlugin, lr_factor
from .precision import PRECISIONS, PrecisionPlugin
from .replay_memory import IndexedExperienceBuffer, group_sizes
from .stage_statistics import StageStatisticsPlugin
from .weight_average import WeightAveragePlugin

__all__ = [
    "SHARED",
    "AuxLossPlugin",
    "FiniteLossPlugin",
    "FreezeSharedPlugin",
    "FreshOptimizerPlugin",
    "IndexedExperienceBuffer",
    "LRSchedulePlugin",
    "NonFiniteLossError",
    "PRECISIONS",
    "PrecisionPlugin",
    "SCHEDULES",
    "StageStatisticsPlugin",
    "WeightAveragePlugin",
    "group_sizes",
    "lr_factor",
]

"""Avalanche plugins that a run adds to its strategy, usable in any Avalanche code.

- ``FreezeSharedPlugin``: freeze shared parameters (or named ones) after the first
  experience.
- ``AuxLossPlugin``: add the layers' auxiliary losses (MoE load balancing) to the loss.
- ``FiniteLossPlugin``: stop at the first NaN/Inf loss, before it reaches the weights.
- ``IndexedExperienceBuffer``: a replay memory that a checkpoint can hold.
"""

from .aux_loss import AuxLossPlugin
from .finite_loss import FiniteLossPlugin, NonFiniteLossError
from .freeze import SHARED, FreezeSharedPlugin
from .replay_memory import IndexedExperienceBuffer, group_sizes

__all__ = [
    "SHARED",
    "AuxLossPlugin",
    "FiniteLossPlugin",
    "FreezeSharedPlugin",
    "IndexedExperienceBuffer",
    "NonFiniteLossError",
    "group_sizes",
]

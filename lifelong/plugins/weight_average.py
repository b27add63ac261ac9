"""Train with the weights as they are; end each experience with their moving average.

``train.ema=β`` keeps, for every parameter that trains in an experience, the exponential
moving average  w̄ ← β w̄ + (1 − β) w  after each optimizer step (Polyak & Juditsky 1992;
at a constant learning rate an average of recent iterates stands in for the decay of the
rate, Sanyal et al. 2023, "Early weight averaging meets high learning rates"). When the
experience ends the averages replace the weights, so everything that reads the model
afterwards (the evaluation, a regulariser's anchor, growth's freeze, a checkpoint) sees the
averaged model. The average restarts from the weights at the start of every experience,
so it never mixes two experiences and a checkpoint, taken between experiences, holds no
state of it. Frozen parameters are not averaged: they do not move.
"""

import torch
from avalanche.core import SupervisedPlugin

from ..checks import fraction


class WeightAveragePlugin(SupervisedPlugin, supports_distributed=True):
    """The moving average of the trained weights, swapped in after every experience.

    Args:
        decay: β in (0, 1); 1 / (1 − β) optimizer steps is the average's horizon.
    """

    def __init__(self, decay: float):
        super().__init__()
        self.decay = fraction("train.ema", decay)
        self._params: list[torch.Tensor] = []
        self._averages: list[torch.Tensor] = []

    def before_training_exp(self, strategy, *args, **kwargs):
        self._params, self._averages = [], []

    def before_update(self, strategy, *args, **kwargs):
        # Taken at the first step, not before the experience: growth and the optimizer's
        # new parameter groups are in place by then, and the weights have not moved yet.
        if not self._params:
            self._params = [p for p in strategy.model.parameters() if p.requires_grad]
            self._averages = [p.detach().clone() for p in self._params]

    @torch.no_grad()
    def after_update(self, strategy, *args, **kwargs):
        # w̄ + (1 − β)(w − w̄) = β w̄ + (1 − β) w, over every tensor in one fused call
        torch._foreach_lerp_(self._averages, [p.detach() for p in self._params], 1 - self.decay)

    @torch.no_grad()
    def after_training_exp(self, strategy, *args, **kwargs):
        for param, average in zip(self._params, self._averages, strict=True):
            param.copy_(average)
        self._params, self._averages = [], []

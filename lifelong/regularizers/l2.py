"""L2 toward the previous experience's weights (``l2``).

``Σ_i (θ_i - θ*_i)²`` over the shared parameters, θ* taken at the end of the last training
experience: the isotropic baseline that EWC and SI refine with a per-parameter importance
(Kirkpatrick et al. 2017 compare against it as "L2").
"""

from torch import Tensor, nn

from .base import ExperienceData, Regularizer
from .shared import snapshot, weighted_distance


class L2Regularizer(Regularizer):
    """Penalty ``Σ ||θ - θ*||²`` over shared parameters; 0 before the first experience ends."""

    def __init__(self):
        self.anchor: dict[str, Tensor] = {}  # name -> θ* (same shape as the parameter)

    def penalty(self, model: nn.Module, *, x, task_labels, output) -> Tensor:
        return weighted_distance(model, self.anchor)

    def after_experience(self, model: nn.Module, data: ExperienceData) -> None:
        self.anchor = snapshot(model)

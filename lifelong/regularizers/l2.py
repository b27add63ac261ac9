"""L2 toward the previous experience's weights (``l2``).

``Σ_i (θ_i - θ*_i)²`` over the shared parameters, θ* taken at the end of the last training
experience: the isotropic baseline that EWC and SI refine with a per-parameter importance
(Kirkpatrick et al. 2017 compare against it as "L2"). ``params`` narrows it to the shared
parameters whose names start with one of the given prefixes (``["tok."]``: the byte
embedding alone), so it can hold a few tensors beside a regulariser that protects the rest.
"""

from collections.abc import Sequence

from torch import Tensor, nn

from .base import ExperienceData, Regularizer
from .shared import check_prefixes, named_prefixes, snapshot, weighted_distance


class L2Regularizer(Regularizer):
    """Penalty ``Σ ||θ - θ*||²`` over shared parameters (those named by ``params``: name
    prefixes; empty means all); 0 before the first experience ends."""

    def __init__(self, params: Sequence[str] = ()):
        self.params = named_prefixes("l2 params", params)
        self.anchor: dict[str, Tensor] = {}  # name -> θ* (same shape as the parameter)
        self.checked = False

    def penalty(self, model: nn.Module, *, x, task_labels, output) -> Tensor:
        if not self.checked:  # at the first step, not after a whole experience's training
            check_prefixes(model, self.params)
            self.checked = True
        return weighted_distance(model, self.anchor)

    def after_experience(self, model: nn.Module, data: ExperienceData) -> None:
        self.anchor = snapshot(model, self.params)

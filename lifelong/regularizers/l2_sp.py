"""L2 toward where each experience started, over what growth added (``l2_sp``).

The other regularisers protect the shared parameters; the parameters growth owns are left
to growth, which freezes the old stages and lets the new one learn freely. A new stage
learns from one experience's data only, and can fit it too closely: on the text domains
the CSV stage's new experts, upcycled from the most used old ones, end up predicting a
held-out table worse than an older stage does (docs/plasticity.md).
This pulls every parameter growth owns that still trains (the new experts and sub-keys,
a query network that is not frozen, new task heads) toward its value at the experience's
first step:

    penalty = Σ_i (θ_i − θ⁰_i)²,   θ⁰ taken at the first step of the experience,

L2-SP (Li, Grandvalet & Davoine, ICML 2018: L2 toward the starting point of fine-tuning
rather than toward 0). With upcycled experts (``growth.init=upcycle``) the starting point is
the old expert each was copied from, so a new expert moves away from what it inherited
only as far as the data pays for. Like the others it is 0 in the first experience, which
has nothing to start from.
"""

from torch import Tensor, nn

from .base import ExperienceData, Regularizer
from .shared import grown_parameters, weighted_distance


class L2SPRegularizer(Regularizer):
    """Penalty ``Σ ||θ - θ⁰||²`` over the trainable parameters growth owns, θ⁰ taken at the
    first step of every experience after the first."""

    def __init__(self):
        self.start: dict[str, Tensor] = {}  # name -> θ⁰ (same shape as the parameter)
        self.armed = False  # the next step is an experience's first: take θ⁰ then

    def penalty(self, model: nn.Module, *, x, task_labels, output) -> Tensor:
        live = grown_parameters(model)
        if self.armed:  # before the experience's first update: θ⁰ is the grown value
            self.start = {n: p.detach().clone() for n, p in live.items()}
            self.armed = False
        return weighted_distance(model, self.start, params=live)

    def after_experience(self, model: nn.Module, data: ExperienceData) -> None:
        self.armed = True

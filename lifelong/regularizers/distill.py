"""Output distillation toward the previous model (``distill``): Learning without
Forgetting, Li & Hoiem 2017, Eq. 2, with Hinton et al. 2015's T² scaling.

A frozen copy of the model is kept from the end of the last training experience; on
every minibatch the current outputs are pulled toward the copy's:

    penalty = T² · mean over rows r of KL( softmax(prev_r / T) || softmax(cur_r / T) )

Rows are samples for (B, C) class logits and tokens for (B, T, V) language-model logits.
Unlike a parameter-space penalty this one reaches every parameter on the output path,
the current experts included, so it also restrains how far new experts pull the outputs.
"""

import copy

import torch
import torch.nn.functional as F
from avalanche.models.utils import avalanche_forward
from torch import Tensor, nn

from .base import ExperienceData, Regularizer

LABELS = ("current", "previous")


def distillation_kl(current: Tensor, previous: Tensor, temperature: float) -> Tensor:
    """T²·KL(softmax(previous/T) || softmax(current/T)), averaged over rows.
    current, previous: (..., V) logits of the same shape; every leading dim is a row."""
    cur = current.reshape(-1, current.shape[-1]) / temperature  # (rows, V)
    prev = previous.reshape(-1, previous.shape[-1]) / temperature
    log_p, log_q = F.log_softmax(cur, dim=-1), F.log_softmax(prev, dim=-1)
    kl = F.kl_div(log_p, log_q, log_target=True, reduction="batchmean")
    return kl * temperature**2


class DistillationRegularizer(Regularizer):
    """LwF-style distillation toward the model as it was after the last experience.

    Args:
        temperature: T of the softened softmax (Li & Hoiem use 2).
        labels: which task labels the outputs are compared under.
            "current": the minibatch's own labels; the outputs the strategy computed are
                reused, so it costs one extra forward (of the frozen copy). For single-head
                classifiers and language models, where every task label has an output.
            "previous": every task label trained before (Li & Hoiem's old-task heads), for
                per-task heads: the copy has no head for a task label it never saw. Costs
                two forwards per previous label; the old heads receive the distillation
                gradient, as in LwF (old experts stay frozen by growth).
    """

    def __init__(self, temperature: float = 2.0, labels: str = "current"):
        if temperature <= 0:
            raise ValueError(f"distill temperature={temperature} must be > 0")
        if labels not in LABELS:
            raise ValueError(f"distill labels={labels!r} is not supported; choose one of {LABELS}")
        self.temperature = temperature
        self.labels = labels
        self.previous: nn.Module | None = None  # frozen copy, in eval mode
        self.previous_labels: list[int] = []  # task labels trained before, sorted

    def penalty(self, model: nn.Module, *, x, task_labels: Tensor, output: Tensor) -> Tensor:
        if self.previous is None:
            return output.new_zeros(())
        if self.labels == "current":
            with torch.no_grad():
                target = avalanche_forward(self.previous, x, task_labels)
            return distillation_kl(output, target, self.temperature)
        total = output.new_zeros(())
        for t in self.previous_labels:
            labels = torch.full_like(task_labels, t)
            with torch.no_grad():
                target = avalanche_forward(self.previous, x, labels)
            total = total + distillation_kl(
                avalanche_forward(model, x, labels), target, self.temperature
            )
        return total / max(len(self.previous_labels), 1)

    def after_experience(self, model: nn.Module, data: ExperienceData) -> None:
        # Deep-copying a PEER layer is supported: it rebuilds its contiguous expert tables
        # from the copied Parameters on the copy's first forward.
        self.previous = frozen_copy(model)
        self.previous_labels = sorted(set(self.previous_labels) | set(data.task_labels))

    def state_dict(self) -> dict:
        state = {k: v for k, v in vars(self).items() if k != "previous"}
        state["previous"] = None if self.previous is None else self.previous.state_dict()
        return state

    def load_state_dict(self, state: dict, *, model: nn.Module) -> None:
        # The copy was taken at the end of the last experience, when the model had the
        # architecture it has now: copy it and load the copy's weights into it.
        state = dict(state)
        weights = state.pop("previous")
        vars(self).update(state)
        self.previous = None
        if weights is not None:
            self.previous = frozen_copy(model)
            self.previous.load_state_dict(weights)


def frozen_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).eval().requires_grad_(False)

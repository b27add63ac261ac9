"""The regulariser protocol: four hooks, all on the model, none on the strategy.

A regulariser pulls the *shared* parameters (``shared_parameters``) toward what earlier
experiences needed; the experts, sub-keys, query networks and per-task heads that growth
manages are protected by growth already. ``RegularizationPlugin`` drives the hooks from
an Avalanche strategy; tests and other loops can call them directly.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..data.in_order import in_order


@dataclass(frozen=True)
class ExperienceData:
    """What a regulariser may read at the end of a training experience.

    Args:
        dataset: the experience's training data; items are (x, y, ..., task_label), as in
            Avalanche datasets.
        criterion: the task loss, ``criterion(output, y) -> scalar``.
        device: where minibatches go.
        batch_size: minibatch size for passes over ``dataset`` (e.g. EWC's Fisher).
        task_labels: the task labels the experience carries.
    """

    dataset: Dataset
    criterion: Callable[[Tensor, Tensor], Tensor]
    device: torch.device
    batch_size: int
    task_labels: tuple[int, ...]

    def batches(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """(x, y, task_labels) minibatches on ``device``, in dataset order."""
        for batch in in_order(self.dataset, self.batch_size):
            x, y, t = batch[0], batch[1], batch[-1]
            yield x.to(self.device), y.to(self.device), t.to(self.device)


class Regularizer:
    """Base class of the regularisers: subclass it and override what you need.

    ``penalty`` is required; the other hooks do nothing by default. The plugin calls, per
    training iteration: ``penalty`` (its value, times the regulariser's weight, is added to
    the loss before backward), ``before_update`` and ``after_update`` (around the optimizer
    step); and ``after_experience`` once at the end of every training experience. Before
    the first ``after_experience`` a penalty should be 0: there is nothing to protect yet.
    """

    def penalty(
        self, model: nn.Module, *, x: Tensor, task_labels: Tensor, output: Tensor
    ) -> Tensor:
        """A scalar to add to the loss. x: the minibatch input, task_labels (B,), output:
        the model's output on it, e.g. (B, C) logits or (B, T, V) for a language model."""
        raise NotImplementedError(f"{type(self).__name__} must define penalty()")

    def before_update(self, model: nn.Module) -> None:
        """After backward, before the optimizer step: gradients are in ``p.grad``."""

    def after_update(self, model: nn.Module) -> None:
        """Right after the optimizer step."""

    def after_experience(self, model: nn.Module, data: ExperienceData) -> None:
        """At the end of a training experience: take anchors, importances, copies."""

    def state_dict(self) -> dict:
        """What the regulariser has learnt, for checkpoints: by default every attribute.
        Attributes must be tensors or plain containers (what ``torch.load(weights_only=
        True)`` reads back); a subclass holding a module overrides this pair of methods."""
        return dict(vars(self))

    def load_state_dict(self, state: dict, *, model: nn.Module) -> None:
        """Restore ``state_dict()``; ``model`` is the model as it was when it was taken."""
        vars(self).update(state)

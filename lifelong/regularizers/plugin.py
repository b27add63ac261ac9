"""Drive regularisers from any Avalanche strategy (Naive, Replay, ...) as one plugin."""

from collections.abc import Sequence

from avalanche.core import SupervisedPlugin
from torch import Tensor

from ..data import experience_task_labels
from .base import ExperienceData, Regularizer


def experience_data(strategy) -> ExperienceData:
    """The current training experience, as a regulariser sees it."""
    return ExperienceData(
        dataset=strategy.experience.dataset,
        criterion=strategy._criterion,
        device=strategy.device,
        batch_size=strategy.train_mb_size,
        task_labels=tuple(experience_task_labels(strategy.experience)),
    )


class RegularizationPlugin(SupervisedPlugin, supports_distributed=True):
    """Adds ``Σ_r λ_r · penalty_r`` to ``strategy.loss`` before every backward, and lets
    each regulariser see the optimizer step and the end of every training experience.

    It only reads the strategy (model, minibatch, output, experience), so it composes with
    growth (``GrowingExperts`` adds parameters between experiences; regularisers ignore
    them) and with replay (the penalty covers replayed samples too; ``after_experience``
    sees the experience's own data). Data parallel, the penalty is weighted with the rest
    of each rank's loss, ``before_update`` sees the gradients summed over the ranks, and
    ``after_experience`` passes over the whole experience on every rank.

    Args:
        regularizers: the regularisers, e.g. ``[EWCRegularizer()]``.
        weights: λ_r, one per regulariser.

    Attributes:
        last_penalties: the unweighted penalties of the latest iteration, detached.
    """

    def __init__(self, regularizers: Sequence[Regularizer], weights: Sequence[float]):
        super().__init__()
        if len(regularizers) != len(weights):
            raise ValueError(
                f"{len(regularizers)} regularizers but {len(weights)} weights; give one each"
            )
        self.regularizers = list(regularizers)
        self.weights = [float(w) for w in weights]
        self.last_penalties: list[Tensor] = []

    def before_backward(self, strategy, *args, **kwargs):
        penalties = [
            r.penalty(
                strategy.model,
                x=strategy.mb_x,
                task_labels=strategy.mb_task_id,
                output=strategy.mb_output,
            )
            for r in self.regularizers
        ]
        for weight, value in zip(self.weights, penalties, strict=True):
            strategy.loss = strategy.loss + weight * value
        self.last_penalties = [p.detach() for p in penalties]

    def before_update(self, strategy, *args, **kwargs):
        for r in self.regularizers:
            r.before_update(strategy.model)

    def after_update(self, strategy, *args, **kwargs):
        for r in self.regularizers:
            r.after_update(strategy.model)

    def state_dict(self) -> dict:
        return {"regularizers": [r.state_dict() for r in self.regularizers]}

    def load_state_dict(self, state: dict, *, model, **context) -> None:
        for r, saved in zip(self.regularizers, state["regularizers"], strict=True):
            r.load_state_dict(saved, model=model)

    def after_training_exp(self, strategy, *args, **kwargs):
        from ..models import routed_as_trained

        data = experience_data(strategy)
        # Passes over the experience just trained (a Fisher, an anchor's outputs) see it
        # routed as in training, not by a stage selector's guess (inferred routing).
        with routed_as_trained(strategy.model, int(strategy.experience.current_experience)):
            for r in self.regularizers:
                r.after_experience(strategy.model, data)

"""The learning rate within each experience: constant, or re-warmed and decayed per experience."""

import math

from avalanche.core import SupervisedPlugin

SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, total: int, *, warmup: int, schedule: str) -> float:
    """The multiple of the base learning rate for optimizer step ``step`` (0-based) of
    ``total`` in one experience: a linear warm-up over ``warmup`` steps, then a half cosine
    down to zero at the last step. Every experience warms up and decays again, as in
    Ibrahim et al., "Simple and Scalable Strategies to Continually Pre-train Large Language
    Models" (2024, re-warming and re-decaying per stage); the decay is SGDR's half cosine
    (Loshchilov & Hutter, ICLR 2017, Eq. 5) without restarts inside an experience."""
    assert 0 <= step < total and 0 <= warmup < total, (step, total, warmup)
    if schedule == "constant":
        return 1.0
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(total - warmup, 1)  # in [0, 1): the last step stays > 0
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class LRSchedulePlugin(SupervisedPlugin, supports_distributed=True):
    """Sets every parameter group's learning rate to ``lr * lr_factor(...)`` before each
    optimizer step (``train.schedule``, ``train.warmup``). It writes the groups directly
    instead of wrapping a torch scheduler because growth appends parameter groups that a
    scheduler built earlier would not know; after an experience every group is back at
    ``lr``, so a checkpoint holds the base rate and a resumed run starts the next experience
    from the same state. Every rank of a data-parallel run draws the same number of batches,
    so their schedules agree."""

    def __init__(self, lr: float, *, schedule: str = "cosine", warmup: float = 0.0):
        super().__init__()
        if schedule not in SCHEDULES:
            choices = ", ".join(SCHEDULES)
            raise ValueError(f"train.schedule={schedule!r} is unknown; choose {choices}")
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"train.warmup={warmup} must be a fraction of an experience in [0, 1)")
        self.lr, self.schedule, self.warmup = lr, schedule, warmup
        self._total = 0

    def before_training_exp(self, strategy, *args, **kwargs):
        self._total = strategy.train_epochs * len(strategy.dataloader)

    def before_training_iteration(self, strategy, *args, **kwargs):
        step = strategy.clock.train_exp_iterations
        total = max(self._total, step + 1)  # a loader that yields more than len() says
        factor = lr_factor(step, total, warmup=int(self.warmup * total), schedule=self.schedule)
        self._set(strategy.optimizer, self.lr * factor)

    def after_training_exp(self, strategy, *args, **kwargs):
        self._set(strategy.optimizer, self.lr)

    @staticmethod
    def _set(optimizer, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr

"""Stop a run at the first non-finite loss, before it reaches the weights."""

import torch
from avalanche.core import SupervisedPlugin


class NonFiniteLossError(ValueError):
    """The training loss became NaN or Inf; phrased for the command line."""


def non_finite_loss(loss: torch.Tensor, strategy) -> NonFiniteLossError | None:
    """The error to raise for ``loss`` at the strategy's current iteration, or None if
    every element of it is finite."""
    if bool(torch.isfinite(loss).all()):
        return None
    kind = "nan" if bool(torch.isnan(loss).any()) else "inf"
    clock = strategy.clock
    return NonFiniteLossError(
        f"training loss is {kind} at experience {strategy.experience.current_experience}, "
        f"iteration {clock.train_exp_iterations} (epoch {clock.train_exp_epochs}); fix "
        f"NaN/Inf in the data or lower train.lr, then continue from the last checkpoint "
        f"(intact) with resume=true"
    )


class FiniteLossPlugin(SupervisedPlugin, supports_distributed=True):
    """Checks ``strategy.loss`` before every backward: a NaN or Inf raises
    ``NonFiniteLossError`` naming the experience and iteration, before the optimizer step
    could write it into the weights, so the last checkpoint stays the run's last good state.
    (Checked after every other plugin has added its penalty: register it last. In a
    data-parallel run ``DataParallelPlugin`` checks the whole batch's loss first, so every
    rank stops at the same iteration.)"""

    def before_backward(self, strategy, *args, **kwargs):
        error = non_finite_loss(strategy.loss, strategy)
        if error is not None:
            raise error

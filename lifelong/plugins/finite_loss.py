"""Stop a run at the first non-finite loss, before it reaches the weights."""

import torch
from avalanche.core import SupervisedPlugin


class NonFiniteLossError(ValueError):
    """The training loss became NaN or Inf; phrased for the command line."""


class FiniteLossPlugin(SupervisedPlugin):
    """Checks ``strategy.loss`` before every backward: a NaN or Inf raises
    ``NonFiniteLossError`` naming the experience and iteration, before the optimizer step
    could write it into the weights, so the last checkpoint stays the run's last good state.
    (Checked after every other plugin has added its penalty: register it last.)"""

    def before_backward(self, strategy, *args, **kwargs):
        loss = strategy.loss
        if bool(torch.isfinite(loss).all()):
            return
        kind = "nan" if bool(torch.isnan(loss).any()) else "inf"
        clock = strategy.clock
        raise NonFiniteLossError(
            f"training loss is {kind} at experience {strategy.experience.current_experience}, "
            f"iteration {clock.train_exp_iterations} (epoch {clock.train_exp_epochs}); fix "
            f"NaN/Inf in the data or lower train.lr, then continue from the last checkpoint "
            f"(intact) with resume=true"
        )

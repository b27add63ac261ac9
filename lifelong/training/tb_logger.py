"""TensorBoard logging on one x axis, the number of finished training experiences, so
that a resumed run can discard what its killed predecessor logged after the checkpoint.

Avalanche's loggers use ``x_plot`` as the step, which is the experience count for this
library's metrics but the iteration count for Avalanche's loss metrics; one purge step
cannot serve both. Here every value is logged at ``step_source()``, and a resumed run
opens its writer with ``purge_step = finished + 1``: TensorBoard then hides every event
of step ≥ purge_step written before it (``SummaryWriter(purge_step=...)``), so each
curve continues without duplicated or missing points.
"""

from collections.abc import Callable

from avalanche.logging import TensorboardLogger
from torch.utils.tensorboard import SummaryWriter


class ExperienceStepLogger(TensorboardLogger):
    """``TensorboardLogger`` writing to ``log_dir`` at step ``step_source()``.

    Args:
        log_dir: the run directory.
        step_source: returns the step of the values being logged, e.g. the strategy's
            ``clock.train_exp_counter``; None keeps Avalanche's ``x_plot``.
        purge_step: when resuming, the first step whose old events are discarded.
    """

    def __init__(self, log_dir, *, step_source: Callable[[], int] | None = None,
                 purge_step: int | None = None):  # fmt: skip
        self._purge_step = purge_step
        self.step_source = step_source
        super().__init__(tb_log_dir=log_dir)

    def _make_writer(self, tb_log_dir, filename_suffix):
        return SummaryWriter(tb_log_dir, filename_suffix=filename_suffix,
                             purge_step=self._purge_step)  # fmt: skip

    def log_single_metric(self, name, value, x_plot):
        step = x_plot if self.step_source is None else self.step_source()
        super().log_single_metric(name, value, step)

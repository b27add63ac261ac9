"""TensorBoard logging on one x axis, the number of finished training experiences, so
that a resumed run can discard what its killed predecessor logged after the checkpoint.

Avalanche's loggers use ``x_plot`` as the step, which is the experience count for this
library's metrics but the iteration count for Avalanche's loss metrics; one purge step
cannot serve both. Here every value is logged at ``step_source()``, and a resumed run
opens its writer with ``purge_step = finished + 1``: TensorBoard then hides every event
of step ≥ purge_step written before it (``SummaryWriter(purge_step=...)``), so each
curve continues without duplicated or missing points.

The writer writes lifelong's custom-scalars layout (``lifelong.metrics.custom_scalars_layout``)
as soon as it opens, so a running job already shows its charts. The layout is a summary at
step 0, below any purge step of a resumed run (``finished + 1``), so the old events file
keeps its copy and the new one adds an identical one, which TensorBoard merges (a resume
with nothing finished purges from step 0, the old copy included, and writes it anew).
"""

import weakref
from collections.abc import Callable

from avalanche.logging import BaseLogger, TensorboardLogger
from torch.utils.tensorboard import SummaryWriter

from ..metrics import custom_scalars_layout


class ExperienceStepLogger(TensorboardLogger):
    """``TensorboardLogger`` writing to ``log_dir`` at step ``step_source()``.

    The events file is opened on the first write, not here: a run is built (and can fail
    on bad input) before its directory exists.

    Args:
        log_dir: the run directory.
        step_source: returns the step of the values being logged, e.g. the strategy's
            ``clock.train_exp_counter``; None keeps Avalanche's ``x_plot``.
        purge_step: when resuming, the first step whose old events are discarded.
        layout: the custom-scalars layout written when the writer opens (``None``:
            lifelong's, ``{}``: none).
    """

    def __init__(
        self,
        log_dir,
        *,
        step_source: Callable[[], int] | None = None,
        purge_step: int | None = None,
        layout: dict | None = None,
    ):
        BaseLogger.__init__(self)  # not TensorboardLogger's: it would open the file now
        self.log_dir, self.purge_step, self.step_source = log_dir, purge_step, step_source
        self.layout = custom_scalars_layout() if layout is None else layout
        self._writer: SummaryWriter | None = None

    @property
    def writer(self) -> SummaryWriter:
        return self.open()

    def open(self) -> SummaryWriter:
        """The writer, created with its events file and the layout on the first call."""
        if self._writer is None:
            self._writer = SummaryWriter(self.log_dir, purge_step=self.purge_step)
            weakref.finalize(self, SummaryWriter.close, self._writer)  # as Avalanche's logger
            if self.layout:
                self._writer.add_custom_scalars(self.layout)
        return self._writer

    def close(self):
        if self._writer is not None:
            self._writer.close()

    def log_single_metric(self, name, value, x_plot):
        step = x_plot if self.step_source is None else self.step_source()
        super().log_single_metric(name, value, step)

"""``LearningRateMetric``: the learning rate each training experience ran at.

``train.schedule=cosine`` warms the rate up and decays it again in every experience
(``plugins/lr_schedule.py``), so what a later experience learned depends on rates that
nothing else in a run records. The rate is read after every optimizer step, so it is the
rate that step used, from the optimizer's first parameter group (every parameter is in
it unless a user's plugin builds others). Emitted once per training experience, with the
evaluation after it, at the x of every lifelong scalar (experiences trained, this one
included):
``lifelong/LearningRate/train_phase/train_stream/mean`` and ``.../last``.

``report()``: ``learning_rate``, one ``{"mean": ..., "last": ...}`` per training
experience, in metrics.json.
"""

from collections.abc import Sequence
from pathlib import Path

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from .names import format_metric_name

NAME = "LearningRate"


class LearningRateMetric(PluginMetric):
    """Mean and last learning rate of each training experience (``rates``)."""

    def __init__(self):
        super().__init__()
        self.rates: list[dict[str, float]] = []  # per finished experience: mean, last
        self._sum, self._steps, self._last = 0.0, 0, 0.0
        self._pending = False  # a finished experience's rate not emitted yet

    def __str__(self) -> str:
        return NAME

    def result(self) -> list[dict[str, float]]:
        return self.rates

    def reset(self) -> None:
        self._sum, self._steps, self._last = 0.0, 0, 0.0

    def before_training_exp(self, strategy):
        self.reset()

    def after_training_iteration(self, strategy):
        self._last = float(strategy.optimizer.param_groups[0]["lr"])
        self._sum += self._last
        self._steps += 1

    def after_training_exp(self, strategy):
        if self._steps:  # an experience with no batch ran at no rate
            self.rates.append({"mean": self._sum / self._steps, "last": self._last})
            self._pending = True

    def before_eval(self, strategy):
        # Emitted with the evaluation that follows the experience: by then the strategy's
        # clock counts it as trained, which is the x every lifelong scalar uses and the
        # step a resumed run purges from (training/tb_logger.py).
        if not self._pending:
            return None
        self._pending = False
        x = len(self.rates)
        return [MetricValue(self, _name(k), v, x) for k, v in self.rates[-1].items()]

    # ------------------------------------------------------------ the run's protocol
    def report(self) -> dict:
        return {"learning_rate": self.rates} if self.rates else {}

    def save_plots(self, run_dir: Path, experience_names: Sequence[str] | None = None) -> None:
        """No figure: one or two numbers per experience, in metrics.json and TensorBoard."""

    def state_dict(self) -> dict:
        return {"rates": [dict(r) for r in self.rates]}

    def load_state_dict(self, state: dict) -> None:
        self.rates = [dict(r) for r in state["rates"]]


def _name(part: str) -> str:
    return format_metric_name(NAME, phase="train", stream="train", extra=(part,))

"""Where a run stands: how many training experiences have finished, and which evaluations
belong in an experience matrix.

Row i of an experience matrix is "after training through experience i" (docs/design.md §5),
so a metric must know how many training experiences have *finished* when an evaluation
runs. Avalanche can also evaluate in the middle of a training experience
(``eval_every > 0`` periodic evaluation, fired from ``after_training_epoch`` or
``after_training_iteration``); those evaluations describe a half-trained model and would
overwrite row i-1, so they are not recorded. Recorded: explicit ``strategy.eval(...)``
calls outside ``train``, the periodic one before training (``eval_every >= 0``; the model
is unchanged since the last experience) and the final one after an experience
(``do_final``; the EvaluationPlugin's ``after_training_exp`` runs before the PeriodicEval
plugin's). With ``eval_every = k > 0`` Avalanche skips that final one when the last epoch
already evaluated, inside the experience, so a run with k > 0 must call
``strategy.eval(test_stream)`` itself.
"""

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_utils import stream_type


class TrainingProgress(PluginMetric):
    """Base for eval metrics: counts finished training experiences (``trained``).

    Args:
        stream: record evaluations of this stream only ("test" by default; None: any
            stream, e.g. to also record evaluations of the train stream).
    """

    # Attributes holding results across experiences; checkpoints save them with
    # ``trained`` (tensors and plain containers only, so they load with weights_only=True).
    STATE: tuple[str, ...] = ()

    def __init__(self, stream: str | None = "test"):
        super().__init__()
        self.stream = stream
        self.trained = 0  # training experiences finished so far
        self._inside_training_exp = False

    def before_training_exp(self, strategy):
        self._inside_training_exp = True

    def after_training_exp(self, strategy):
        self.trained += 1
        self._inside_training_exp = False

    def records(self, strategy) -> bool:
        """Whether the experience now being evaluated goes into this metric."""
        if self._inside_training_exp:
            return False
        return self.stream is None or stream_type(strategy.experience) == self.stream

    def state_dict(self) -> dict:
        return {"trained": self.trained, **{k: getattr(self, k) for k in self.STATE}}

    def load_state_dict(self, state: dict) -> None:
        self.trained = int(state["trained"])
        for k in self.STATE:
            setattr(self, k, state[k])

    def reset_progress(self):
        self.trained = 0
        self._inside_training_exp = False

"""``RoutingMetric``: the life cycle shared by the metrics that read expert routing.

An expert layer reports each forward's routing through ``register_routing_hook``: the
expert ids and router weights of every token slot, both (M, K), -1 in an id slot that
holds no expert (docs/design.md §1, §3). The expert-usage and MoE metrics both

- hook the layers only between ``before_eval`` and ``after_eval``, so training pays
  nothing, and unhook at the next ``before_eval`` too when an evaluation raised;
- accumulate the routing of one evaluated experience per layer, and only of experiences
  that go into the metric (``TrainingProgress.records``);
- at the end of the experience turn that accumulator into figures, keep them in
  ``history``, add the accumulator to the stream total and emit the figures;
- at the end of the evaluation stream do the same for the stream total, which becomes
  ``latest_overall()``.

This base owns that life cycle. A subclass says only what differs: which layers it reads
(``_select``), what it accumulates per routing call (``_accumulate``, ``_finish``,
``_merge``), how an accumulator becomes figures (``_stats``, ``_record``) and what it
emits (``_emit``).
"""

import copy
from functools import partial

from avalanche.evaluation.metric_results import MetricValue
from torch import Tensor, nn

from ..layers import GrowingLayer
from .names import strategy_metric_name
from .progress import TrainingProgress

ROOT_NAME = "root"  # name of the model itself when it is the expert layer


def expert_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module path -> module, for every growing layer (each reports its routing)."""
    return {
        name or ROOT_NAME: module
        for name, module in model.named_modules()
        if isinstance(module, GrowingLayer)
    }


class RoutingMetric(TrainingProgress):
    """Base of the metrics over the routing of the expert layers in ``model`` (None: those
    of ``strategy.model`` at each evaluation).

    ``history`` holds one entry per recorded experience and layer, ``{"trained",
    "experience", "layer", **self._record(...)}``; ``latest_overall()`` maps each layer to
    ``self._stats`` of its total over the last recorded evaluation stream.
    """

    STATE = ("history", "_latest_overall")

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        stream: str | None = "test",
        keep_history: bool = True,
    ):
        super().__init__(stream)
        self.model = model
        self.keep_history = keep_history
        self.history: list[dict] = []
        self._latest_overall: dict[str, dict] = {}
        self._layers: dict[str, nn.Module] = {}  # hooked at the last before_eval
        self._handles: list = []
        self._recording = False
        self._acc: dict = {}  # layer -> accumulator of this experience
        self._stream_acc: dict = {}  # layer -> accumulator of this eval call

    # ------------------------------------------------------------- what subclasses say
    def _select(self, model: nn.Module) -> dict[str, nn.Module]:
        """The layers to hook, {module path: layer}."""
        raise NotImplementedError

    def _accumulate(self, acc, layer: nn.Module, idx: Tensor, gates: Tensor):
        """``acc`` (None before the experience's first routing) with one forward's
        routing added; idx, gates: (M, K)."""
        raise NotImplementedError

    def _finish(self, acc, layer: nn.Module):
        """The experience's accumulator as it is kept (``acc`` is None when the layer
        routed nothing)."""
        raise NotImplementedError

    def _merge(self, total, acc):
        """The stream total (None before the first experience) with ``acc`` added."""
        raise NotImplementedError

    def _stats(self, acc, layer: nn.Module) -> dict:
        """The figures of an accumulator: an entry of ``latest_overall()``."""
        raise NotImplementedError

    def _record(self, acc, layer: nn.Module, stats: dict) -> dict:
        """What a ``history`` entry keeps besides trained, experience and layer."""
        raise NotImplementedError

    def _emit(self, value, name: str, layer: nn.Module, acc, stats: dict) -> list:
        """The MetricValues of one layer, per experience or over the stream; make each
        with ``value(metric, extra, v, **kwargs)``, which names it
        ``lifelong/{metric}/{phase}_phase/{stream}_stream[/Exp{j}]/{extra...}`` (x =
        trained; names.py)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------ results
    def latest_overall(self) -> dict[str, dict]:
        """{layer: figures} over the last recorded evaluation stream."""
        return copy.deepcopy(self._latest_overall)

    def result(self) -> dict[str, dict]:
        return self.latest_overall()

    def reset(self) -> None:
        """Forget history and training progress (for reusing the metric in a new run)."""
        self._detach()
        self.reset_progress()
        self.history, self._latest_overall = [], {}
        self._acc, self._stream_acc = {}, {}

    # ---------------------------------------------------------------------- callbacks
    def before_eval(self, strategy):
        self._detach()  # an evaluation that raised may have left hooks behind
        self._stream_acc = {}
        if not self._inside_training_exp:  # a mid-experience evaluation is never recorded
            self._attach(self.model if self.model is not None else strategy.model)
        return None

    def before_eval_exp(self, strategy):
        self._recording = bool(self._handles) and self.records(strategy)
        self._acc = {}

    def after_eval_exp(self, strategy):
        recorded, self._recording = self._recording, False
        if not recorded:
            return None
        j = int(strategy.experience.current_experience)
        value = partial(self._value, strategy, experience=True)
        values = []
        for name, layer in self._layers.items():
            acc = self._finish(self._acc.get(name), layer)
            stats = self._stats(acc, layer)
            if self.keep_history:
                entry = {"trained": self.trained, "experience": j, "layer": name}
                self.history.append({**entry, **self._record(acc, layer, stats)})
            self._stream_acc[name] = self._merge(self._stream_acc.get(name), acc)
            values += self._emit(value, name, layer, acc, stats)
        self._acc = {}
        return values

    def after_eval(self, strategy):
        self._detach()
        value = partial(self._value, strategy, experience=False)
        values = []
        for name, total in self._stream_acc.items():
            layer = self._layers[name]
            stats = self._latest_overall[name] = self._stats(total, layer)
            values += self._emit(value, name, layer, total, stats)
        self._stream_acc = {}
        return values or None

    # ----------------------------------------------------------------------- emission
    def _value(
        self, strategy, metric: str, extra: tuple[str, ...], value, *, experience: bool, **kwargs
    ) -> MetricValue:
        """The ``value`` that ``_emit`` gets, with strategy and experience bound."""
        name = strategy_metric_name(metric, strategy, experience=experience, extra=extra)
        return MetricValue(self, name, value, self.trained, **kwargs)

    # -------------------------------------------------------------------------- hooks
    def _attach(self, model: nn.Module):
        self._layers = self._select(model)
        self._handles = [
            layer.register_routing_hook(partial(self._route, name))
            for name, layer in self._layers.items()
        ]

    def _detach(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._recording = False

    def _route(self, name: str, layer: nn.Module, idx: Tensor, gates: Tensor):
        if self._recording:
            self._acc[name] = self._accumulate(self._acc.get(name), layer, idx, gates)

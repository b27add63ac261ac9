"""``ExpertUsageMetric``: expert usage and KL non-uniformity of every expert layer of a
model, per evaluated experience and per growth stage (BRIEF §2, "Expert usage metrics").

An expert layer is any module with ``register_routing_hook`` (``lifelong.layers.PEER``):
after each forward it reports the retrieved expert ids and router weights, both
(M, heads*topk). The metric hooks the layers only between ``before_eval`` and
``after_eval``, so training pays nothing, and accumulates ``z'_i = Σ_x g_i(x)`` in float64
on the layer's device. Layers grow between experiences, so each experience's mass has the
layer's expert count at that time.

Emitted (x = number of trained experiences; ``{layer}`` is the module path):
- after each experience j: ``ExpertUsage/eval_phase/test_stream/Exp{j}/{layer}``,
  ``KL_Nonuniformity/...`` and the same for ``.../{layer}/stage{s}`` (the experts stage s
  added), plus ``ExpertUsageMap/.../Exp{j}/{layer}``, a heatmap of the √N x √N sub-key
  grid as an Avalanche ``TensorImage`` (TensorBoard logs it with ``add_image``; text
  loggers skip it);
- after the stream: the same without ``/Exp{j}``, over the mass summed over the stream.
"""

import copy

import torch
from avalanche.evaluation.metric_results import LoggingType, MetricValue, TensorImage
from torch import Tensor, nn

from .experts import expert_usage, kl_nonuniformity, pool_grid, usage_grid
from .names import strategy_metric_name
from .plots import usage_rgb
from .progress import TrainingProgress
from .routing_tap import RoutingTap

ROOT_NAME = "root"  # name of the model itself when it is the expert layer


def expert_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module path -> module, for every module that can report its routing."""
    return {
        name or ROOT_NAME: module
        for name, module in model.named_modules()
        if callable(getattr(module, "register_routing_hook", None))
    }


def stage_bounds(layer: nn.Module) -> list[int]:
    """Cumulative expert count after each stage: ``layer.stage_bounds`` where the layer has
    it (every expert layer does), else the squares of PEER's ``stage_sub_keys``."""
    bounds = getattr(layer, "stage_bounds", None)
    if bounds is None:
        bounds = [n * n for n in getattr(layer, "stage_sub_keys", [])]
    return [int(b) for b in bounds]


def usage_stats(mass: Tensor, bounds: list[int] | None) -> dict:
    """{"usage", "kl", "per_stage": [{"usage", "kl"}, ...]} of a 1-D mass; per stage over
    the experts that stage added (stage s: ids [bounds[s-1], bounds[s])). KL is None where
    no mass was routed."""
    starts = [0, *(bounds or [])[:-1]]
    per_stage = [
        {"usage": expert_usage(mass[lo:hi]), "kl": kl_nonuniformity(mass[lo:hi])}
        for lo, hi in zip(starts, bounds or [], strict=True)
    ]
    return {"usage": expert_usage(mass), "kl": kl_nonuniformity(mass), "per_stage": per_stage}


def _padded(mass: Tensor | None, size: int) -> Tensor:
    """(size,) float64 CPU copy of mass, zero-extended for experts it did not know."""
    out = torch.zeros(size, dtype=torch.float64)
    if mass is not None:
        out[: mass.numel()] = mass.to("cpu", torch.float64)
    return out


class ExpertUsageMetric(TrainingProgress):
    """Expert usage of the expert layers in ``model`` (default: ``strategy.model``).

    Args:
        model: the model whose expert layers are hooked; None looks them up in
            ``strategy.model`` at each evaluation.
        stream: record evaluations of this stream only (None: any stream).
        heatmaps: emit a usage heatmap per layer and experience.
        heatmap_max_side: heatmaps of more than this many sub-keys per side are sum-pooled
            down to it (a 1024² layer would otherwise make a 1024x1024 image per entry).
        keep_history: keep every experience's mass in ``history``; each entry costs
            8 bytes per expert, so turn it off for million-expert runs.
    """

    STATE = ("history", "_latest_overall")

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        stream: str | None = "test",
        heatmaps: bool = True,
        heatmap_max_side: int = 256,
        keep_history: bool = True,
    ):
        super().__init__(stream)
        self.model = model
        self.heatmaps = heatmaps
        self.heatmap_max_side = heatmap_max_side
        self.keep_history = keep_history
        self.history: list[dict] = []
        self._latest_overall: dict[str, dict] = {}
        self._tap = RoutingTap(expert_layers, self._on_route)
        self._mass: dict[str, Tensor] = {}  # layer -> (N,) float64 on device, this experience
        self._stream_mass: dict[str, Tensor] = {}  # layer -> (N,) float64 CPU, this eval call

    def __str__(self) -> str:
        return "ExpertUsage"

    # ------------------------------------------------------------------------ results
    def latest_overall(self) -> dict[str, dict]:
        """{layer: {"usage", "kl", "per_stage"}} over the last recorded evaluation stream."""
        return copy.deepcopy(self._latest_overall)

    def result(self) -> dict[str, dict]:
        return self.latest_overall()

    def reset(self) -> None:
        """Forget history and training progress (for reusing the metric in a new run)."""
        self._tap.detach()
        self.reset_progress()
        self.history, self._latest_overall = [], {}
        self._mass, self._stream_mass = {}, {}

    # ---------------------------------------------------------------------- callbacks
    def before_eval(self, strategy):
        self._tap.detach()  # an evaluation that raised may have left hooks behind
        self._stream_mass = {}
        if not self._inside_training_exp:  # a mid-experience evaluation is never recorded
            self._tap.attach(self.model if self.model is not None else strategy.model)
        return None

    def before_eval_exp(self, strategy):
        self._tap.start_experience(self.records(strategy))
        self._mass = {}

    def after_eval_exp(self, strategy):
        if not self._tap.stop_experience():
            return None
        j = int(strategy.experience.current_experience)
        values = []
        for name, layer in self._tap.layers.items():
            mass = _padded(self._mass.get(name), int(layer.num_experts))  # (N,)
            stages = stage_bounds(layer)
            if self.keep_history:
                self.history.append(
                    {
                        "trained": self.trained,
                        "experience": j,
                        "layer": name,
                        "mass": mass,
                        "stage_bounds": stages,
                        "num_sub_keys": getattr(layer, "num_sub_keys", None),
                    }
                )
            total = self._stream_mass.get(name)
            self._stream_mass[name] = mass if total is None else _padded(total, mass.numel()) + mass
            values += self._emit(strategy, name, layer, mass, stages, experience=True)
        self._mass = {}
        return values

    def after_eval(self, strategy):
        self._tap.detach()
        values = []
        for name, mass in self._stream_mass.items():
            layer = self._tap.layers[name]
            stages = stage_bounds(layer)
            self._latest_overall[name] = usage_stats(mass, stages)
            values += self._emit(strategy, name, layer, mass, stages, experience=False)
        self._stream_mass = {}
        return values or None

    # -------------------------------------------------------------------------- hooks
    def _on_route(self, name: str, layer: nn.Module, idx: Tensor, gates: Tensor):
        """idx, gates: (M, heads*topk) expert ids and router weights of one recorded
        forward (the tap calls this only while an experience is recorded)."""
        size = int(layer.num_experts)
        mass = self._mass.get(name)
        if mass is None or mass.numel() < size:
            grown = torch.zeros(size, dtype=torch.float64, device=idx.device)
            if mass is not None:
                grown[: mass.numel()] = mass
            mass = self._mass[name] = grown
        idx, gates = idx.reshape(-1), gates.reshape(-1)
        kept = idx >= 0  # -1 marks a dropped (over-capacity) token slot
        mass.index_add_(0, idx[kept], gates[kept].to(torch.float64))

    # ----------------------------------------------------------------------- emission
    def _emit(self, strategy, name, layer, mass, stages, *, experience: bool) -> list:
        stats = usage_stats(mass, stages)

        def value(metric: str, extra: tuple[str, ...], v, **kwargs) -> MetricValue:
            full = strategy_metric_name(metric, strategy, experience=experience, extra=extra)
            return MetricValue(self, full, v, self.trained, **kwargs)

        scalars = [((name,), stats)]
        scalars += [((name, f"stage{s}"), st) for s, st in enumerate(stats["per_stage"])]
        out = []
        for extra, st in scalars:
            out.append(value("ExpertUsage", extra, st["usage"]))
            if st["kl"] is not None:
                out.append(value("KL_Nonuniformity", extra, st["kl"]))
        side = getattr(layer, "num_sub_keys", None)
        if self.heatmaps and side is not None:
            grid = pool_grid(usage_grid(mass, side), self.heatmap_max_side)  # (n', n')
            image = TensorImage(usage_rgb(grid))
            out.append(value("ExpertUsageMap", (name,), image, logging_type=LoggingType.IMAGE))
        return out

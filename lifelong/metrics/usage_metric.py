"""``ExpertUsageMetric``: expert usage and KL non-uniformity of every expert layer of a
model, per evaluated experience and per growth stage (docs/design.md §4; Lample et al.
2019, as reported by He 2024, Table 2).

An expert layer is any module with ``register_routing_hook`` (``lifelong.layers.PEER``,
the MoEs, ``DenseFFN``): after each forward it reports the retrieved expert ids and router
weights, both (M, heads*topk). ``RoutingMetric`` hooks the layers only during evaluation;
this metric accumulates ``z'_i = Σ_x g_i(x)`` in float64 on the layer's device. Layers
grow between experiences (docs/design.md §2), so each experience's mass has the layer's
expert count at that time.

Emitted (x = number of trained experiences; ``{layer}`` is the module path):
- after each experience j: ``lifelong/ExpertUsage/eval_phase/test_stream/Exp{j}/{layer}``,
  ``lifelong/KL_Nonuniformity/...``, ``lifelong/KL_Nonuniformity_Normalized/...`` (KL / log
  N, comparable across layers of different sizes) and the same for ``.../{layer}/stage{s}``
  (the experts stage s added), plus ``lifelong/ExpertUsageMap/.../Exp{j}/{layer}``, a
  heatmap of the √N x √N sub-key grid with its stage boundaries and colour strip
  (``usage_image``) as an Avalanche ``TensorImage`` (TensorBoard logs it with
  ``add_image``; text loggers skip it);
- after the stream: the same without ``/Exp{j}``, over the mass summed over the stream.
"""

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from avalanche.evaluation.metric_results import LoggingType, TensorImage
from torch import Tensor, nn

from .experts import expert_usage, kl_nonuniformity, kl_normalized, usage_grid
from .plots import usage_png
from .routing_metric import RoutingMetric, expert_layers
from .usage_image import usage_image

# Metric names (``lifelong/{name}/...``, names.py); the TensorBoard layout charts them.
USAGE, KL, KL_NORMALIZED, USAGE_MAP = (
    "ExpertUsage",
    "KL_Nonuniformity",
    "KL_Nonuniformity_Normalized",
    "ExpertUsageMap",
)


def _stats(mass: Tensor) -> dict:
    return {
        "usage": expert_usage(mass),
        "kl": kl_nonuniformity(mass),
        "kl_normalized": kl_normalized(mass),
    }


def usage_stats(mass: Tensor, bounds: list[int]) -> dict:
    """{"usage", "kl", "kl_normalized", "per_stage": [{the same}, ...]} of a 1-D mass; per
    stage over the experts that stage added (stage s: ids [bounds[s-1], bounds[s]),
    docs/design.md §2). KL is None where no mass was routed; the normalised KL is KL / log N
    over the experts counted."""
    starts = [0, *bounds[:-1]]
    per_stage = [_stats(mass[lo:hi]) for lo, hi in zip(starts, bounds, strict=True)]
    return {**_stats(mass), "per_stage": per_stage}


def _padded(mass: Tensor | None, size: int) -> Tensor:
    """(size,) float64 CPU copy of mass, zero-extended for experts it did not know."""
    out = torch.zeros(size, dtype=torch.float64)
    if mass is not None:
        out[: mass.numel()] = mass.to("cpu", torch.float64)
    return out


def _mean(values) -> float | None:
    """Mean of the values that are not None; None if there is none."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


class ExpertUsageMetric(RoutingMetric):
    """Expert usage of the expert layers in ``model`` (default: ``strategy.model``).

    ``latest_overall()``: {layer: {"usage", "kl", "kl_normalized", "per_stage": [...]}};
    ``history`` entries: trained, experience, layer, "mass" ((N,) float64 CPU),
    "stage_bounds" and "num_sub_keys" (None for layers without a sub-key grid).

    Args:
        model: the model whose expert layers are hooked; None looks them up in
            ``strategy.model`` at each evaluation.
        stream: record evaluations of this stream only (None: any stream).
        heatmaps: emit a usage heatmap per layer and experience.
        heatmap_max_side: heatmaps of more than this many sub-keys per side are sum-pooled
            down to it (a 1024² layer would otherwise make a 1024x1024 image per entry).
        keep_history: keep every experience's mass in ``history``; each entry costs
            8 bytes per expert, so turn it off for million-expert runs (``save_plots``
            then has nothing to draw).
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        stream: str | None = "test",
        heatmaps: bool = True,
        heatmap_max_side: int = 256,
        keep_history: bool = True,
    ):
        super().__init__(model, stream=stream, keep_history=keep_history)
        self.heatmaps = heatmaps
        self.heatmap_max_side = heatmap_max_side

    def __str__(self) -> str:
        return "ExpertUsage"

    # ------------------------------------------------------------------------- report
    def report(self) -> dict:
        """metrics.json figures: usage, KL and KL / log N of the last evaluation's
        stream-summed mass, averaged over the expert layers (None without layers or
        values), and per layer and stage under ``expert_layers``."""
        per_layer = self.latest_overall()
        return {
            "expert_usage": _mean(v["usage"] for v in per_layer.values()),
            "kl_nonuniformity": _mean(v["kl"] for v in per_layer.values()),
            "kl_nonuniformity_normalized": _mean(v["kl_normalized"] for v in per_layer.values()),
            "expert_layers": per_layer,
        }

    def save_plots(self, run_dir: Path, experience_names: Sequence[str] | None = None) -> None:
        """``usage_{layer}.png`` (dots in the path as underscores) of every product-key
        layer: its √N x √N sub-key grid of the mass summed over the last evaluation, with
        its growth stages' boundaries. (The map sums every experience: no names needed.)"""
        for name, (side, mass, bounds) in _last_eval_masses(self.history).items():
            if side:
                path = Path(run_dir) / f"usage_{name.replace('.', '_')}.png"
                title = f"expert usage of {name}\n(router mass over the last evaluation)"
                usage_png(usage_grid(mass, side), path, title, stage_sides=stage_sides(bounds))

    # ------------------------------------------------------------------ accumulation
    def _select(self, model: nn.Module) -> dict[str, nn.Module]:
        return expert_layers(model)

    def _accumulate(self, mass: Tensor | None, layer: nn.Module, idx: Tensor, gates: Tensor):
        """z'_i += Σ g_i over one forward; idx, gates: (M, heads*topk). mass: (N,) float64
        on the layer's device, so no per-batch device sync."""
        size = int(layer.num_experts)
        if mass is None or mass.numel() < size:
            grown = torch.zeros(size, dtype=torch.float64, device=idx.device)
            if mass is not None:
                grown[: mass.numel()] = mass
            mass = grown
        idx, gates = idx.reshape(-1), gates.reshape(-1)
        kept = idx >= 0  # -1 marks a dropped (over-capacity) token slot
        mass.index_add_(0, idx[kept], gates[kept].to(torch.float64))
        return mass

    def _finish(self, mass: Tensor | None, layer: nn.Module) -> Tensor:
        return _padded(mass, int(layer.num_experts))  # (N,) float64 CPU

    def _merge(self, total: Tensor | None, mass: Tensor) -> Tensor:
        return mass if total is None else _padded(total, mass.numel()) + mass

    def _stats(self, mass: Tensor, layer: nn.Module) -> dict:
        return usage_stats(mass, list(layer.stage_bounds))

    def _record(self, mass: Tensor, layer: nn.Module, stats: dict) -> dict:
        return {
            "mass": mass,
            "stage_bounds": list(layer.stage_bounds),
            "num_sub_keys": getattr(layer, "num_sub_keys", None),
        }

    # ----------------------------------------------------------------------- emission
    def _emit(self, value, name: str, layer: nn.Module, mass: Tensor, stats: dict) -> list:
        scalars = [((name,), stats)]
        scalars += [((name, f"stage{s}"), st) for s, st in enumerate(stats["per_stage"])]
        out = []
        for extra, st in scalars:
            out.append(value(USAGE, extra, st["usage"]))
            if st["kl"] is not None:
                out.append(value(KL, extra, st["kl"]))
            if st["kl_normalized"] is not None:
                out.append(value(KL_NORMALIZED, extra, st["kl_normalized"]))
        side = getattr(layer, "num_sub_keys", None)
        if self.heatmaps and side is not None:
            pixels = usage_image(
                usage_grid(mass, side),
                stage_sides=stage_sides(layer.stage_bounds),
                max_side=self.heatmap_max_side,
            )
            image = TensorImage(pixels)
            out.append(value(USAGE_MAP, (name,), image, logging_type=LoggingType.IMAGE))
        return out


def stage_sides(stage_bounds: Sequence[int]) -> list[int]:
    """Sub-keys per side at the end of each stage of a product-key layer, whose stage s
    ends at expert id n_s² (docs/design.md §2)."""
    return [math.isqrt(int(b)) for b in stage_bounds]


def _last_eval_masses(history: list[dict]) -> dict[str, tuple[int | None, Tensor, list]]:
    """{layer: (num_sub_keys, (N,) mass summed over the experiences of the last
    evaluation, stage_bounds)}, from ``history``."""
    if not history:
        return {}
    last = max(r["trained"] for r in history)
    out: dict[str, tuple[int | None, Tensor, list]] = {}
    for r in history:
        if r["trained"] != last:
            continue
        if r["layer"] in out:
            side, total, bounds = out[r["layer"]]
            # Same evaluation: the layer did not grow in between.
            out[r["layer"]] = (side, total + r["mass"], bounds)
        else:
            out[r["layer"]] = (r["num_sub_keys"], r["mass"], r["stage_bounds"])
    return out

"""MoE health metrics over routing-hook data (docs/design.md §3): the share of dropped
tokens (Switch Transformer, Fedus et al. 2021) and the coefficient of variation of the
tokens per expert.

The routing hook of an MoE layer reports (M, K) expert ids per forward, -1 in a slot that
holds no expert. For token choice (``TokenChoiceMoE``) a -1 is an assignment dropped over
capacity; for expert choice (``ExpertChoiceMoE``, Zhou et al. 2022) rows are padded with
-1 to the largest count, so there a *dropped token* is one that no expert picked (a row
of -1).

``MoEMetric`` hooks every layer with ``register_routing_hook`` and ``aux_loss`` only
during evaluation (``RoutingMetric``) and emits (x = number of trained experiences;
``{layer}`` is the module path):
- after each experience j: ``lifelong/DroppedTokens/eval_phase/test_stream/Exp{j}/{layer}``
  (%, in [0, 100]) and ``lifelong/TokensPerExpertCV/.../Exp{j}/{layer}``, over all the
  experience's tokens and all the layer's experts (those no token reached count 0, so
  stage-restricted routing, docs/design.md §2, raises the CV);
- after the stream: the same without ``/Exp{j}``, over the whole evaluated stream.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from .routing_metric import RoutingMetric, expert_layers

# metric name -> key of the figures
EMITTED = (("DroppedTokens", "dropped_token_pct"), ("TokensPerExpertCV", "tokens_per_expert_cv"))


def tokens_per_expert(idx: Tensor, num_experts: int) -> Tensor:
    """(num_experts,) int64 count of token-slots per expert, ignoring -1."""
    flat = idx.reshape(-1)
    return torch.bincount(flat[flat >= 0].cpu(), minlength=int(num_experts))


def coefficient_of_variation(counts: Tensor) -> float | None:
    """std / mean (population std) of per-expert counts; None when there is no token."""
    c = counts.to(torch.float64)
    if c.numel() == 0 or float(c.sum()) == 0.0:
        return None
    return float(c.std(correction=0) / c.mean())


def moe_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module path -> module, for every expert layer with an ``aux_loss`` (the MoEs)."""
    return {name: m for name, m in expert_layers(model).items() if hasattr(m, "aux_loss")}


class _Tally:
    """Counts of one layer over some forwards."""

    def __init__(self):
        self.slots = self.dropped = self.tokens = self.unrouted = 0
        self.per_expert = torch.zeros(0, dtype=torch.int64)  # (N,) token-slots per expert

    def add(self, idx: Tensor, num_experts: int):
        """idx: (M, K) expert ids of one forward, -1 in empty slots."""
        self.slots += idx.numel()
        self.dropped += int((idx < 0).sum())
        self.tokens += idx.shape[0]
        self.unrouted += int((idx < 0).all(dim=1).sum())
        self._add_counts(tokens_per_expert(idx, num_experts))

    def merge(self, other: "_Tally"):
        self.slots += other.slots
        self.dropped += other.dropped
        self.tokens += other.tokens
        self.unrouted += other.unrouted
        self._add_counts(other.per_expert)

    def _add_counts(self, counts: Tensor):
        size = max(self.per_expert.numel(), counts.numel())  # layers grow between calls
        total = torch.zeros(size, dtype=torch.int64)
        total[: self.per_expert.numel()] += self.per_expert
        total[: counts.numel()] += counts
        self.per_expert = total

    def stats(self, per_token: bool) -> dict:
        """{"dropped_token_pct", "tokens_per_expert_cv"}; ``per_token``: dropped means
        reaching no expert (expert choice), else a -1 slot (token choice)."""
        num, den = (self.unrouted, self.tokens) if per_token else (self.dropped, self.slots)
        return {
            "dropped_token_pct": 100.0 * num / den if den else 0.0,
            "tokens_per_expert_cv": coefficient_of_variation(self.per_expert),
        }


class MoEMetric(RoutingMetric):
    """Dropped tokens and tokens-per-expert CV of the MoE layers in ``model`` (default:
    ``strategy.model``), per evaluated experience and over the stream.

    ``latest_overall()``: {layer: {"dropped_token_pct", "tokens_per_expert_cv"}};
    ``history`` entries: trained, experience, layer, "tokens_per_expert" ((N,) int64) and
    the two figures.

    Args:
        model: the model whose MoE layers are hooked; None looks them up in
            ``strategy.model`` at each evaluation.
        stream: record evaluations of this stream only (None: any stream).
        keep_history: keep every experience's figures and per-expert counts in ``history``.
    """

    def __str__(self) -> str:
        return "MoE"

    # ------------------------------------------------------------------------- report
    def report(self) -> dict:
        """metrics.json figures: ``moe_layers`` (``latest_overall()``) when the model has
        MoE layers; nothing otherwise, so runs without them keep their metrics.json."""
        per_layer = self.latest_overall()
        return {"moe_layers": per_layer} if per_layer else {}

    def save_plots(self, run_dir: Path, experience_names: Sequence[str] | None = None) -> None:
        """No figure: the per-layer figures are few numbers, all in metrics.json."""

    # ------------------------------------------------------------------ accumulation
    def _select(self, model: nn.Module) -> dict[str, nn.Module]:
        return moe_layers(model)

    def _accumulate(self, tally: _Tally | None, layer: nn.Module, idx: Tensor, gates: Tensor):
        """idx: (M, K) expert ids of one recorded forward, -1 in empty slots."""
        tally = _Tally() if tally is None else tally
        tally.add(idx, int(layer.num_experts))
        return tally

    def _finish(self, tally: _Tally | None, layer: nn.Module) -> _Tally:
        return _Tally() if tally is None else tally

    def _merge(self, total: _Tally | None, tally: _Tally) -> _Tally:
        total = _Tally() if total is None else total
        total.merge(tally)
        return total

    def _stats(self, tally: _Tally, layer: nn.Module) -> dict:
        # Expert choice pads its rows with -1: there a dropped token is a row of -1.
        return tally.stats(per_token=getattr(layer, "routing", None) == "expert_choice")

    def _record(self, tally: _Tally, layer: nn.Module, stats: dict) -> dict:
        return {"tokens_per_expert": tally.per_expert.clone(), **stats}

    # ----------------------------------------------------------------------- emission
    def _emit(self, value, name: str, layer: nn.Module, tally: _Tally, stats: dict) -> list:
        return [
            value(metric, (name,), stats[key]) for metric, key in EMITTED if stats[key] is not None
        ]

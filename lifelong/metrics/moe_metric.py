"""MoE health metrics over routing-hook data (BRIEF §3, "What to monitor"): the share of
dropped tokens and the coefficient of variation of the tokens per expert.

The routing hook of an MoE layer reports (M, K) expert ids per forward, -1 in a slot that
holds no expert. For token choice (``TokenChoiceMoE``) a -1 is an assignment dropped over
capacity; for expert choice (``ExpertChoiceMoE``) rows are padded with -1 to the largest
count, so there a *dropped token* is one that no expert picked (a row of -1).

``MoEMetric`` follows ``ExpertUsageMetric``: it hooks every layer with
``register_routing_hook`` and ``aux_loss`` only between ``before_eval`` and ``after_eval``
and emits (x = number of trained experiences; ``{layer}`` is the module path):
- after each experience j: ``DroppedTokens/eval_phase/test_stream/Exp{j}/{layer}`` (%, in
  [0, 100]) and ``TokensPerExpertCV/.../Exp{j}/{layer}``, over all the experience's tokens
  and all the layer's experts (those no token reached count 0, so stage-restricted
  routing raises the CV);
- after the stream: the same without ``/Exp{j}``, over the whole evaluated stream.
"""

import copy

import torch
from avalanche.evaluation.metric_results import MetricValue
from torch import Tensor, nn

from .names import strategy_metric_name
from .progress import TrainingProgress
from .routing_tap import RoutingTap
from .usage_metric import ROOT_NAME


def dropped_token_pct(idx: Tensor) -> float:
    """% of token-slots with idx == -1 (dropped over capacity), in [0, 100]; 0 if empty."""
    if idx.numel() == 0:
        return 0.0
    return 100.0 * float((idx < 0).sum()) / idx.numel()


def unrouted_token_pct(idx: Tensor) -> float:
    """% of tokens (rows of the (M, K) ids) that reached no expert at all, in [0, 100]."""
    if idx.numel() == 0:
        return 0.0
    rows = idx.reshape(idx.shape[0], -1)
    return 100.0 * float((rows < 0).all(dim=1).sum()) / rows.shape[0]


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


def tokens_per_expert_cv(idx: Tensor, num_experts: int) -> float | None:
    """Coefficient of variation of the token-slots per expert (0: perfectly even)."""
    return coefficient_of_variation(tokens_per_expert(idx, num_experts))


def moe_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module path -> module, for every layer with a routing hook and an ``aux_loss``."""
    return {
        name or ROOT_NAME: module
        for name, module in model.named_modules()
        if callable(getattr(module, "register_routing_hook", None)) and hasattr(module, "aux_loss")
    }


class _Tally:
    """Counts of one layer over some forwards."""

    def __init__(self):
        self.slots = self.dropped = self.tokens = self.unrouted = 0
        self.per_expert = torch.zeros(0, dtype=torch.int64)  # (N,) token-slots per expert

    def add(self, idx: Tensor, num_experts: int):
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


class MoEMetric(TrainingProgress):
    """Dropped tokens and tokens-per-expert CV of the MoE layers in ``model`` (default:
    ``strategy.model``), per evaluated experience and over the stream.

    Args:
        model: the model whose MoE layers are hooked; None looks them up in
            ``strategy.model`` at each evaluation.
        stream: record evaluations of this stream only (None: any stream).
        keep_history: keep every experience's figures and per-expert counts in ``history``.
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
        self._tap = RoutingTap(moe_layers, self._on_route)
        self._tally: dict[str, _Tally] = {}  # layer -> counts of this experience
        self._stream_tally: dict[str, _Tally] = {}  # layer -> counts of this eval call

    def __str__(self) -> str:
        return "MoE"

    # ------------------------------------------------------------------------ results
    def latest_overall(self) -> dict[str, dict]:
        """{layer: {"dropped_token_pct", "tokens_per_expert_cv"}} over the last recorded
        evaluation stream."""
        return copy.deepcopy(self._latest_overall)

    def result(self) -> dict[str, dict]:
        return self.latest_overall()

    def reset(self) -> None:
        """Forget history and training progress (for reusing the metric in a new run)."""
        self._tap.detach()
        self.reset_progress()
        self.history, self._latest_overall = [], {}
        self._tally, self._stream_tally = {}, {}

    # ---------------------------------------------------------------------- callbacks
    def before_eval(self, strategy):
        self._tap.detach()  # an evaluation that raised may have left hooks behind
        self._stream_tally = {}
        if not self._inside_training_exp:  # a mid-experience evaluation is never recorded
            self._tap.attach(self.model if self.model is not None else strategy.model)
        return None

    def before_eval_exp(self, strategy):
        self._tap.start_experience(self.records(strategy))
        self._tally = {}

    def after_eval_exp(self, strategy):
        if not self._tap.stop_experience():
            return None
        j = int(strategy.experience.current_experience)
        values = []
        for name, layer in self._tap.layers.items():
            tally = self._tally.get(name, _Tally())
            stats = tally.stats(_per_token(layer))
            if self.keep_history:
                self.history.append(
                    {
                        "trained": self.trained,
                        "experience": j,
                        "layer": name,
                        "tokens_per_expert": tally.per_expert.clone(),
                        **stats,
                    }
                )
            self._stream_tally.setdefault(name, _Tally()).merge(tally)
            values += self._emit(strategy, name, stats, experience=True)
        self._tally = {}
        return values

    def after_eval(self, strategy):
        self._tap.detach()
        values = []
        for name, tally in self._stream_tally.items():
            stats = tally.stats(_per_token(self._tap.layers[name]))
            self._latest_overall[name] = stats
            values += self._emit(strategy, name, stats, experience=False)
        self._stream_tally = {}
        return values or None

    # -------------------------------------------------------------------------- hooks
    def _on_route(self, name: str, layer: nn.Module, idx: Tensor, gates: Tensor):
        """idx: (M, K) expert ids of one recorded forward, -1 in empty slots."""
        self._tally.setdefault(name, _Tally()).add(idx, int(layer.num_experts))

    # ----------------------------------------------------------------------- emission
    def _emit(self, strategy, name: str, stats: dict, *, experience: bool) -> list:
        out = []
        for metric, key in (
            ("DroppedTokens", "dropped_token_pct"),
            ("TokensPerExpertCV", "tokens_per_expert_cv"),
        ):
            if stats[key] is not None:
                full = strategy_metric_name(metric, strategy, experience=experience, extra=(name,))
                out.append(MetricValue(self, full, stats[key], self.trained))
        return out


def _per_token(layer: nn.Module) -> bool:
    """Expert choice pads its rows with -1: there a dropped token is a row of -1."""
    return getattr(layer, "routing", None) == "expert_choice"

"""``TaskInferenceMetric``: how often inferred routing picks the experience a sample (or a
token) really comes from, per evaluated experience and over training (docs/task_inference.md).

A ``GrowingExperts`` with ``routing="inferred"`` reports the experiences it inferred in
every evaluation forward (``register_inference_hook``); on test experience j the right
answer is j. Emitted (x = number of trained experiences; ``{layer}`` the module path):
``lifelong/TaskInference_Acc/eval_phase/test_stream/Exp{j}/{layer}`` after each experience,
and the same without ``/Exp{j}`` over the stream.

``report()``: ``task_inference_accuracy`` (the last evaluation of the stream, averaged over
inferring layers), ``task_inference_matrix`` (row i: after training through experience i;
column j: test experience j; None where j was not trained yet: no answer can be right)
and ``selector_bytes``, the memory the selectors keep. Nothing for runs without inferred
routing, whose metrics.json keeps its keys.
"""

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from .routing_metric import RoutingMetric


def inferring_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module path -> module, for every module that infers experiences."""
    return {
        name: m
        for name, m in model.named_modules()
        if callable(getattr(m, "register_inference_hook", None))
        and getattr(m, "selector", None) is not None
    }


def selector_bytes(layers) -> int:
    """The memory of the selectors of ``layers`` (inferring modules), each counted once:
    the layers of a byte language model share one selector of the input bytes."""
    selectors = {id(m.selector): m.selector for m in layers}
    return sum(s.nbytes() for s in selectors.values())


class TaskInferenceMetric(RoutingMetric):
    """Task-inference accuracy of the inferring layers of ``model`` (default:
    ``strategy.model``). ``history`` entries: trained, experience, layer, correct, total,
    accuracy."""

    _experience = -1  # the test experience now evaluated (set before each)
    _bytes = 0  # what the selectors keep, at the last evaluation (set at each)

    def __str__(self) -> str:
        return "TaskInference"

    # ------------------------------------------------------------------------- report
    def report(self) -> dict:
        per_layer = self.latest_overall()
        if not per_layer:
            return {}
        accuracies = [v["accuracy"] for v in per_layer.values() if v["accuracy"] is not None]
        return {
            "task_inference_accuracy": sum(accuracies) / len(accuracies) if accuracies else None,
            "task_inference_matrix": self.matrix(),
            "selector_bytes": self._bytes,
        }

    def matrix(self) -> list[list[float | None]]:
        """Rows i (after training through experience i) by test experiences j: accuracy,
        averaged over layers, None for j > i."""
        cells: dict[tuple[int, int], list[float]] = {}
        for r in self.history:
            if r["trained"] > 0 and r["accuracy"] is not None:
                cells.setdefault((r["trained"] - 1, r["experience"]), []).append(r["accuracy"])
        if not cells:
            return []
        rows = max(i for i, _ in cells) + 1
        cols = max(j for _, j in cells) + 1
        return [
            [
                sum(cells[i, j]) / len(cells[i, j]) if j <= i and (i, j) in cells else None
                for j in range(cols)
            ]
            for i in range(rows)
        ]

    def save_plots(self, run_dir: Path, experience_names: Sequence[str] | None = None) -> None:
        """No figure: the matrix is in metrics.json."""

    # ---------------------------------------------------------------------- callbacks
    def before_eval_exp(self, strategy):
        self._experience = int(strategy.experience.current_experience)
        return super().before_eval_exp(strategy)

    # ------------------------------------------------------------------ accumulation
    def _select(self, model: nn.Module) -> dict[str, nn.Module]:
        layers = inferring_layers(model)
        self._bytes = selector_bytes(layers.values())
        return layers

    def _attach(self, model: nn.Module):
        self._layers = self._select(model)
        self._handles = [
            m.register_inference_hook(
                lambda module, ids, name=name: self._route(name, module, ids, None)
            )
            for name, m in self._layers.items()
        ]

    def _accumulate(self, acc, layer: nn.Module, idx: Tensor, gates) -> list[int]:
        """idx: the experiences inferred for one forward's samples (or tokens)."""
        correct, total = acc or (0, 0)
        return [correct + int((idx == self._experience).sum()), total + idx.numel()]

    def _finish(self, acc, layer: nn.Module) -> list[int]:
        return acc or [0, 0]

    def _merge(self, total, acc) -> list[int]:
        return [a + b for a, b in zip(total or (0, 0), acc, strict=True)]

    def _stats(self, acc, layer: nn.Module) -> dict:
        correct, total = acc
        return {"accuracy": correct / total if total else None}

    def _record(self, acc, layer: nn.Module, stats: dict) -> dict:
        return {"correct": acc[0], "total": acc[1], **stats}

    # ----------------------------------------------------------------------- emission
    def _emit(self, value, name: str, layer: nn.Module, acc, stats: dict) -> list:
        if stats["accuracy"] is None:
            return []
        return [value("TaskInference_Acc", (name,), stats["accuracy"])]

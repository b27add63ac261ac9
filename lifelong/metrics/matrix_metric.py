"""``ExperienceMatrix``: the accuracy or perplexity matrix R[i][j] of a continual run,
collected by an Avalanche plugin metric, with its summaries (docs/design.md §5).

- Row i = after training through experience i (``TrainingProgress.trained - 1``). An
  evaluation before any training fills ``initial`` (the random-init baseline of FWT).
- Per evaluated experience j it emits
  ``lifelong/Top1_Acc_Exp/eval_phase/test_stream/Task{t}/Exp{j}`` (or
  ``lifelong/Perplexity_Exp/...``) at x = number of trained experiences, so each
  experience's TensorBoard curve is its forgetting curve.
- At the end of an evaluation stream whose rows 0..i are complete it emits
  ``lifelong/Average_Accuracy/eval_phase/test_stream`` (``Average_Perplexity``),
  ``Forgetting``, ``BWT`` and ``FWT`` of ``summarize_matrix`` at row i; for perplexity also
  ``Average_BitsPerByte`` and ``Forgetting_BitsPerByte``.

Perplexity is summarised in bits per byte too, ``log2`` of a cell's perplexity (the mean
next-byte loss in bits): a language model's headline perplexity is the geometric mean over
the experiences, ``2^mean(bits per byte)`` (exp of the mean loss), so one domain with a
huge perplexity does not drown the others, and forgetting is also given as the rise in
bits per byte (docs/design.md §5).

Accuracy is correct/total of ``mb_output.argmax(-1) == mb_y``; perplexity is
exp(Σ token NLL / tokens) from logits (B, T, V) and targets (B, T) (any (..., V) logits
with (...) targets work, classification included). Targets equal to -100 (PyTorch's
``ignore_index``, e.g. padding) count in neither. Accumulators are float64 and stay on the
model's device until the experience ends, so no per-batch device sync.
"""

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from avalanche.evaluation.metric_results import MetricValue

from .continual import summarize_matrix
from .names import strategy_metric_name
from .plots import curves_png, matrix_png
from .progress import TrainingProgress

IGNORE_INDEX = -100

# kind -> (per-experience metric name, stream average name, higher is better,
#          metrics.json key of the last row's mean)
KINDS = {
    "accuracy": ("Top1_Acc_Exp", "Average_Accuracy", True, "average_accuracy"),
    "perplexity": ("Perplexity_Exp", "Average_Perplexity", False, "perplexity"),
}
# ``summaries`` key -> metric name of the stream figure (the average's name is the kind's)
SUMMARY_NAMES = {
    "forgetting": "Forgetting",
    "bwt": "BWT",
    "fwt": "FWT",
    "bits_per_byte": "Average_BitsPerByte",
    "forgetting_bits_per_byte": "Forgetting_BitsPerByte",
}


class ExperienceMatrix(TrainingProgress):
    """Collects R[i][j] for ``kind`` "accuracy" or "perplexity" over ``stream``.

    Attributes:
        matrix: complete rows 0..T'-1 (list of lists of float), [trained through][evaluated].
        initial: the metric on every experience before training, or None if not evaluated.
    """

    STATE = ("_rows", "_initial", "_num_experiences")

    def __init__(self, kind: str = "accuracy", *, stream: str | None = "test"):
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not supported; choose one of {sorted(KINDS)}")
        super().__init__(stream)
        self.kind = kind
        self.exp_name, self.average_name, self.higher_is_better, self._average_key = KINDS[kind]
        self._rows: dict[int, dict[int, float]] = {}  # i -> {j: R[i][j]}
        self._initial: dict[int, float] = {}  # j -> metric before any training
        self._num_experiences = 0  # T: length of the evaluated stream
        self._recording = False
        self._recorded_this_eval = False
        self._numerator: torch.Tensor | None = None  # correct predictions or NLL sum
        self._tokens: torch.Tensor | None = None  # targets counted

    def __str__(self) -> str:
        return self.exp_name

    # ------------------------------------------------------------------------ results
    @property
    def matrix(self) -> list[list[float]]:
        T = self._num_experiences
        rows = []
        for i in range(T):
            row = self._rows.get(i, {})
            if any(j not in row for j in range(T)):
                break
            rows.append([row[j] for j in range(T)])
        return rows

    @property
    def initial(self) -> list[float] | None:
        T = self._num_experiences
        if T == 0 or any(j not in self._initial for j in range(T)):
            return None
        return [self._initial[j] for j in range(T)]

    def summary(self) -> dict[str, float | None] | None:
        """``summaries`` at the last complete row; None before the first one."""
        rows = self.matrix
        return self.summaries(rows) if rows else None

    def summaries(self, rows: list[list[float]]) -> dict[str, float | None]:
        """``summarize_matrix`` of rows 0..i (average over j <= i); for perplexity the
        average is the geometric mean, and ``bits_per_byte`` and ``forgetting_bits_per_byte``
        summarise the matrix in bits per byte."""
        out = summarize_matrix(rows, higher_is_better=self.higher_is_better, initial=self.initial)
        if self.kind == "perplexity":
            bits = summarize_matrix(bits_per_byte(rows), higher_is_better=False)
            out["average"] = 2.0 ** bits["average"]
            out.update(bits_per_byte=bits["average"], forgetting_bits_per_byte=bits["forgetting"])
        return out

    def result(self) -> list[list[float]]:
        return self.matrix

    # ------------------------------------------------------------------------- report
    def report(self) -> dict:
        """metrics.json figures, keys named after ``kind`` (accuracy shown):
        ``accuracy_matrix`` (the rows), ``average_accuracy`` (mean of the last row: the
        whole stream after the last training, docs/design.md §5; also right for joint
        training, whose matrix is a single row), ``forgetting``, ``bwt``, ``fwt`` (at the
        last complete row) and ``initial_accuracy``; None where there is no row yet."""
        rows = self.matrix
        summary = self.summary() or dict.fromkeys(("forgetting", "bwt", "fwt"))
        # The whole last row (the stream after the last training), not only j <= i: the
        # same for a sequential run, and right for joint training's single row.
        lm = self.kind == "perplexity"
        last_bits = statistics.fmean(bits_per_byte(rows[-1:])[0]) if rows and lm else None
        if not rows:
            headline = None
        else:
            headline = row_average(self.kind, rows[-1])
        out = {
            f"{self.kind}_matrix": rows,
            self._average_key: headline,
            "forgetting": summary["forgetting"],
            "bwt": summary["bwt"],
            "fwt": summary["fwt"],
            f"initial_{self.kind}": self.initial,
        }
        if lm:
            out.update(
                bits_per_byte_matrix=bits_per_byte(rows),
                bits_per_byte=last_bits,
                forgetting_bits_per_byte=summary.get("forgetting_bits_per_byte"),
            )
        return out

    def save_plots(self, run_dir: Path, experience_names: Sequence[str] | None = None) -> None:
        """``{kind}_matrix.png`` (the matrix) and ``forgetting_curves.png`` (one curve per
        experience, from the untrained model's score when it was evaluated) in ``run_dir``;
        experiences are named by ``experience_names`` ("experience j" without them).
        Nothing before the first complete row."""
        if not self.matrix:
            return  # no complete row yet: nothing to draw
        run_dir = Path(run_dir)
        matrix_png(
            self.matrix,
            run_dir / f"{self.kind}_matrix.png",
            title=f"{self.kind} matrix: R[i][j] on experience j after training through i",
            higher_is_better=self.higher_is_better,
            label=self.kind,
            experience_names=experience_names,
        )
        lower = "" if self.higher_is_better else " (lower is better)"
        curves_png(
            self.matrix,
            run_dir / "forgetting_curves.png",
            initial=self.initial,
            ylabel=f"{self.kind}{lower}",
            title=f"forgetting curves: {self.kind} on each experience as training goes on",
            experience_names=experience_names,
            log_y=not self.higher_is_better,  # perplexities may span orders of magnitude
        )

    def reset(self) -> None:
        """Forget everything, training progress included (Avalanche never calls this on a
        plain PluginMetric; it is for reusing the metric in a new run)."""
        self.reset_progress()
        self._rows, self._initial, self._num_experiences = {}, {}, 0
        self._numerator = self._tokens = None

    # ---------------------------------------------------------------------- callbacks
    def before_eval(self, strategy):
        self._recorded_this_eval = False

    def before_eval_exp(self, strategy):
        self._recording = self.records(strategy)
        self._numerator = self._tokens = None

    def after_eval_iteration(self, strategy):
        if self._recording:
            self._update(strategy.mb_output.detach(), strategy.mb_y.detach())

    def after_eval_exp(self, strategy):
        if not self._recording or self._tokens is None or int(self._tokens) == 0:
            return None
        value = self._value()
        exp = strategy.experience
        j = int(exp.current_experience)
        try:
            length = len(exp.origin_stream)
        except TypeError:  # a generator stream has no length
            length = 0
        self._num_experiences = max(self._num_experiences, length, j + 1)
        if self.trained == 0:
            self._initial[j] = value
        else:
            self._rows.setdefault(self.trained - 1, {})[j] = value
        self._recorded_this_eval = True
        name = strategy_metric_name(self.exp_name, strategy, task=True, experience=True)
        return [MetricValue(self, name, value, self.trained)]

    def after_eval(self, strategy):
        if not self._recorded_this_eval or self.trained == 0:
            return None
        rows = self.matrix
        if len(rows) < self.trained:
            return None  # rows 0..trained-1 are not all complete yet
        summary = self.summaries(rows[: self.trained])
        names = {"average": self.average_name, **SUMMARY_NAMES}
        return [
            MetricValue(self, strategy_metric_name(names[key], strategy), value, self.trained)
            for key, value in summary.items()
            if value is not None
        ]

    # ------------------------------------------------------------------- accumulation
    def _update(self, output: torch.Tensor, targets: torch.Tensor):
        numerator, tokens = batch_score(self.kind, output, targets)
        if self._numerator is None:
            self._numerator, self._tokens = numerator, tokens
        else:
            self._numerator = self._numerator + numerator
            self._tokens = self._tokens + tokens

    def _value(self) -> float:
        return score_value(self.kind, self._numerator, self._tokens)


def bits_per_byte(rows: list[list[float]]) -> list[list[float]]:
    """Perplexities -> bits per byte, ``log2`` of each cell (the mean loss in bits)."""
    return [[math.log2(v) for v in row] for row in rows]


def batch_score(kind: str, output: torch.Tensor, targets: torch.Tensor):
    """(numerator, counted targets) of one batch, as 0-d tensors on the output's device:
    correct predictions (accuracy) or summed token NLL (perplexity).
    output (..., C) scores or logits; targets (...) class ids."""
    valid = targets != IGNORE_INDEX  # (...)
    if kind == "accuracy":
        numerator = ((output.argmax(-1) == targets) & valid).sum()
    else:
        logits = output.reshape(-1, output.shape[-1]).float()  # (B*T, V)
        numerator = F.cross_entropy(
            logits, targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
        )
    return numerator.to(torch.float64), valid.sum()


def row_average(kind: str, row: list[float]) -> float:
    """The headline of one row of scores: the mean accuracy, or for perplexity the
    geometric mean (2 ** mean bits per byte), as ``ExperienceMatrix.report`` gives it."""
    if kind == "perplexity":
        return 2.0 ** statistics.fmean(bits_per_byte([row])[0])
    return statistics.fmean(row)


def score_value(kind: str, numerator, tokens) -> float:
    """Accuracy, or perplexity exp(NLL / tokens), from summed ``batch_score`` parts."""
    mean = float(numerator) / int(tokens)
    if kind == "accuracy":
        return mean
    return math.exp(mean) if mean < 709.0 else math.inf  # exp overflows a float64 at 709.8

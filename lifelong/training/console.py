"""What a run says on the console: the ``lifelong`` logger, and the results table that both
``lifelong run`` and ``lifelong eval`` end with.

Library code only logs (``logging.getLogger("lifelong")``); the command line decides where
it goes and at which ``log.level``. Progress bars are drawn only on a terminal, so a log
redirected to a file holds lines, not carriage returns.
"""

import logging
import sys

from ..metrics.continual import per_experience_forgetting

LOG = logging.getLogger("lifelong")


class _Stdout(logging.StreamHandler):
    """A handler writing to whatever ``sys.stdout`` is when a record comes, not the one
    there was when it was made (a redirected or captured stdout may have replaced it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


def configure(level: str = "info") -> None:
    """Send the ``lifelong`` logger's records at ``level`` and above to stdout, one plain
    line each (the command line calls this; a library user keeps their own logging)."""
    handler = _Stdout()
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.handlers[:] = [handler]
    LOG.setLevel(level.upper())
    LOG.propagate = False


def on_terminal() -> bool:
    """Whether stdout is a terminal (where a progress bar may redraw its line)."""
    return sys.stdout.isatty()


def results_table(
    names: list[str],
    scores: list[float],
    *,
    metric: str,
    matrix: list[list[float | None]] | None = None,
    summary: dict[str, float | None] | None = None,
) -> str:
    """Per experience its final score (and forgetting, given the matrix of scores after
    each training experience), then one line of summary figures (average, forgetting,
    BWT, usage, KL...; None values left out)."""
    drops = per_experience_forgetting(matrix, metric != "perplexity") if matrix else []
    width = max(10, *(len(n) for n in names))
    header = f"{'experience':<{width}}  {metric:>10}"
    if matrix:
        header += f"  {'forgetting':>10}"
    lines = [header]
    for j, (name, score) in enumerate(zip(names, scores, strict=True)):
        line = f"{name:<{width}}  {score:>10.4f}"
        if matrix:  # the experience trained last has nothing to forget yet
            line += f"  {f'{drops[j]:.4f}' if j < len(drops) else '-':>10}"
        lines.append(line)
    if summary:
        lines.append("  ".join(f"{k} {v:.4f}" for k, v in summary.items() if v is not None))
    return "\n".join(lines)


def run_headline(metrics: dict) -> tuple[str, float, list]:
    """(metric, headline, matrix) of a finished run's ``metrics.json``: a language model's
    perplexity (lower is better), else the average accuracy, and the matrix behind it."""
    lm = "perplexity_matrix" in metrics
    metric = "perplexity" if lm else "accuracy"
    return metric, metrics["perplexity" if lm else "average_accuracy"], metrics[f"{metric}_matrix"]


def run_results(metrics: dict) -> str:
    """The results table of a finished run's ``metrics.json``."""
    metric, average, matrix = run_headline(metrics)
    summary = {
        "average": average,
        "forgetting": metrics.get("forgetting"),
        "BWT": metrics.get("bwt"),
        "FWT": metrics.get("fwt"),
        "stage inferred": metrics.get("task_inference_accuracy"),
        "usage": metrics.get("expert_usage"),
        "KL/log N": metrics.get("kl_nonuniformity_normalized"),
    }
    return results_table(
        metrics["experience_names"], matrix[-1], metric=metric, matrix=matrix, summary=summary
    )

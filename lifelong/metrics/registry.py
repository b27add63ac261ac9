"""The metrics every run collects, as data: adding one is one file plus one entry here.

Each entry is ``(name, factory)``. ``name`` is the key under which a checkpoint stores the
metric's ``state_dict()``, so it never changes; ``factory(task, model)`` builds the metric
for a run of ``task`` ("lm" or "classification") on ``model``. Every run metric is an
Avalanche plugin metric with two more methods the run report calls:

- ``report() -> dict``: its figures for metrics.json (JSON-serialisable);
- ``save_plots(run_dir: Path, experience_names: Sequence[str] | None = None) -> None``:
  its PNG figures, written into ``run_dir``, experiences named by ``experience_names``.
"""

from torch import nn

from .lr_metric import LearningRateMetric
from .matrix_metric import ExperienceMatrix
from .moe_metric import MoEMetric
from .task_inference import TaskInferenceMetric
from .usage_metric import ExpertUsageMetric


def _matrix(task: str, model: nn.Module) -> ExperienceMatrix:
    # Language models are measured by perplexity, classifiers by accuracy (docs/design.md §5).
    return ExperienceMatrix("perplexity" if task == "lm" else "accuracy")


def _usage(task: str, model: nn.Module) -> ExpertUsageMetric:
    return ExpertUsageMetric(model)


def _moe(task: str, model: nn.Module) -> MoEMetric:
    return MoEMetric()  # looks the MoE layers up in strategy.model at each evaluation


def _task_inference(task: str, model: nn.Module) -> TaskInferenceMetric:
    return TaskInferenceMetric(model)  # reports only where routing infers the experience


def _learning_rate(task: str, model: nn.Module) -> LearningRateMetric:
    return LearningRateMetric()


RUN_METRICS = (
    ("matrix", _matrix),
    ("usage", _usage),
    ("moe", _moe),
    ("task_inference", _task_inference),
    ("learning_rate", _learning_rate),
)


def run_metrics(task: str, model: nn.Module) -> dict:
    """{name: metric} of ``RUN_METRICS``, built in its order for a run of ``task``."""
    return {name: factory(task, model) for name, factory in RUN_METRICS}

"""Metric names: lifelong's own namespace over Avalanche's layout (docs/design.md §7).

``lifelong/{metric}/{phase}_phase/{stream}_stream[/Task{t:03}][/Exp{e:03}][/extra...]``

Every name starts with ``lifelong/`` so that no lifelong tag equals a tag of Avalanche's
standard metrics: lifelong's per-experience accuracy would otherwise be
``Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000``, exactly what
``accuracy_metrics(experience=True)`` writes, and a user who adds Avalanche's metrics to a
run would get two curves under one TensorBoard tag.

The rest comes from Avalanche's own template (``default_metric_name_template``), fed with
integer task and experience ids, so names stay right past experience 9 (a hand-written
``f"Exp00{e}"`` gives "Exp0010") and sort in experience order. Extra parts (a layer path,
a stage) are appended as "/"-separated components.
"""

from avalanche.evaluation.metric_utils import (
    default_metric_name_template,
    generic_get_metric_name,
    phase_and_task,
    stream_type,
)

NAMESPACE = "lifelong"  # the first component of every lifelong metric name


def format_metric_name(
    metric: str,
    *,
    phase: str,
    stream: str | None,
    task: int | None = None,
    experience: int | None = None,
    extra: tuple[str, ...] = (),
) -> str:
    """Compose a name from its parts; ``task``/``experience`` None leaves that level out."""
    info = {
        "metric_name": f"{NAMESPACE}/{metric}",
        "phase_name": phase,
        "stream_name": stream,
        "task_label": None if task is None else int(task),
        "experience_id": None if experience is None else int(experience),
    }
    return "/".join([generic_get_metric_name(default_metric_name_template, info), *extra])


def strategy_metric_name(
    metric: str,
    strategy,
    *,
    task: bool = False,
    experience: bool = False,
    extra: tuple[str, ...] = (),
) -> str:
    """The name for the strategy's current phase, stream, task and experience (the task
    level is dropped when the experience mixes several task labels, as Avalanche does)."""
    phase, task_label = phase_and_task(strategy)
    exp = strategy.experience
    return format_metric_name(
        metric,
        phase=phase,
        stream=stream_type(exp),
        task=task_label if task else None,
        experience=exp.current_experience if experience else None,
        extra=extra,
    )

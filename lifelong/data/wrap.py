"""Wrap any existing Avalanche benchmark object into a StreamSpec."""

import torch
from avalanche.benchmarks.scenarios.task_aware import with_task_labels

from .byte_windows import BYTE_VOCAB
from .checks import one_of
from .errors import DataError
from .experiences import class_range_name, classes_timeline
from .spec import StreamSpec


def _attribute(experience, name: str):
    """The experience's attribute, or None; Avalanche masks some attributes with a ValueError."""
    try:
        return getattr(experience, name)
    except (AttributeError, ValueError):
        return None


def infer_scenario(task_labels: list[list[int]], classes: list[list[int]]) -> str:
    """task-il if experiences differ in task label, domain-il if they share classes, else
    class-il."""
    if len({t for labels in task_labels for t in labels}) > 1:
        return "task-il"
    seen = [c for cs in classes for c in set(cs)]
    return "domain-il" if len(seen) != len(set(seen)) else "class-il"


def from_benchmark(
    benchmark,
    *,
    task: str = "classification",
    scenario: str | None = None,
    experience_names: list[str] | None = None,
) -> StreamSpec:
    """A StreamSpec over `benchmark` (anything with aligned .train_stream and .test_stream).

    Task labels (and, for classification, classes per experience) are added from the datasets'
    attributes when the experiences lack them; input_shape is read off the first sample;
    scenario is inferred unless given.
    """
    one_of("task", task, ("classification", "lm"))
    try:
        train, test = list(benchmark.train_stream), list(benchmark.test_stream)
    except AttributeError:
        raise DataError(
            f"{type(benchmark).__name__} is not an Avalanche benchmark: it needs .train_stream "
            "and .test_stream"
        ) from None
    if not train or len(train) != len(test):
        raise DataError(
            f"the benchmark has {len(train)} train and {len(test)} test experiences; it needs "
            "the same number (at least one) of each, aligned by index"
        )
    if _attribute(train[0], "task_labels") is None:
        if _attribute(train[0].dataset, "targets_task_labels") is None:
            raise DataError(
                "the benchmark's datasets have no targets_task_labels; build them with task "
                "labels, e.g. with Avalanche's task_incremental_benchmark"
            )
        benchmark = with_task_labels(benchmark)
    if task == "classification" and _attribute(train[0], "classes_in_this_experience") is None:
        benchmark = classes_timeline(benchmark)
    train = list(benchmark.train_stream)
    task_labels = [list(exp.task_labels) for exp in train]
    x = benchmark.train_stream[0].dataset[0][0]
    input_shape = tuple(torch.as_tensor(x).shape)
    if task == "lm":
        names = [f"experience {i}" for i in range(len(train))]
        scenario, num_classes = scenario or "lm", BYTE_VOCAB
    else:
        classes = [sorted(int(c) for c in exp.classes_in_this_experience) for exp in train]
        test_classes = [
            int(c) for exp in benchmark.test_stream for c in exp.dataset.targets.uniques
        ]
        num_classes = max(c for cs in classes + [test_classes] for c in cs) + 1
        names = [class_range_name("classes", cs) for cs in classes]
        scenario = scenario or infer_scenario(task_labels, classes)
    one_of("scenario", scenario, ("class-il", "task-il", "domain-il", "lm"))
    names = list(experience_names) if experience_names is not None else names
    if len(names) != len(train):
        raise DataError(
            f"experience_names has {len(names)} entries for {len(train)} experiences; "
            "give one per experience"
        )
    return StreamSpec(benchmark, task, scenario, input_shape, num_classes, names)

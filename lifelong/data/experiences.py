"""Avalanche datasets and benchmarks built from tensors, for classification and byte LM.

Classification experiences use Avalanche's tensor classification dataset (scalar targets,
`classes_in_this_experience`). LM experiences wrap `ByteWindows` in Avalanche's
`TaskAwareClassificationDataset`, which despite its name needs no `targets`: it is an
`AvalancheDataset` with the `task_set` that task-aware code reads, over a
`targets_task_labels` attribute appended to each sample. Minibatches are (x, y, t) with
sequence targets. There is no `targets` attribute, because Avalanche's class bookkeeping
assumes one class per sample.
"""

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche.benchmarks.utils import (
    AvalancheDataset,
    DataAttribute,
    TaskAwareClassificationDataset,
    _make_taskaware_tensor_classification_dataset,
)

from .byte_windows import ByteWindows


def classification_dataset(x: torch.Tensor, y: torch.Tensor, task_label: int) -> AvalancheDataset:
    """x: (N, *input_shape) float, y: (N,) int64 class ids; every sample gets task_label."""
    return _make_taskaware_tensor_classification_dataset(
        x, y, targets=y.tolist(), task_labels=task_label
    )


def lm_dataset(
    data: torch.Tensor, starts: torch.Tensor, seq_len: int, task_label: int
) -> AvalancheDataset:
    """Windows of data (uint8) at starts; `byte_offsets` keeps each window's start for audits."""
    n = len(starts)
    return TaskAwareClassificationDataset(
        [ByteWindows(data, starts, seq_len)],
        data_attributes=[
            DataAttribute([task_label] * n, "targets_task_labels", use_in_getitem=True),
            DataAttribute(starts.tolist(), "byte_offsets"),
        ],
    )


def make_benchmark(train: list, test: list, classification: bool):
    """A benchmark whose experiences carry task_label(s) and, for classification, classes."""
    benchmark = with_task_labels(benchmark_from_datasets(train=train, test=test))
    return classes_timeline(benchmark) if classification else benchmark


CLASS_SETS = ("classes_in_this_experience", "previous_classes", "classes_seen_so_far")


def classes_timeline(benchmark):
    """Avalanche's ``with_classes_timeline``, with each experience's classes as a sorted list
    instead of the set it stores: Avalanche's own ``MultiHeadClassifier`` and
    ``IncrementalClassifier`` index tensors with them, which a set cannot do."""
    benchmark = with_classes_timeline(benchmark)
    for stream in benchmark.streams.values():
        for experience in stream:
            for name in CLASS_SETS:
                setattr(experience, name, sorted(int(c) for c in getattr(experience, name)))
    return benchmark


def class_range_name(prefix: str, classes) -> str:
    """ "digits 0-1" for a contiguous run of classes, else "classes 3, 7, 9"."""
    c = sorted({int(k) for k in classes})
    if len(c) > 1 and c[-1] - c[0] == len(c) - 1:  # contiguous (never a list of the range)
        return f"{prefix} {c[0]}-{c[-1]}"
    return f"{prefix} " + ", ".join(str(k) for k in c)


def experience_task_labels(experience) -> list[int]:
    """The task labels of an experience, also for benchmarks without a task timeline."""
    labels = getattr(experience, "task_labels", None)
    if labels is None:
        per_sample = getattr(experience.dataset, "targets_task_labels", None)
        labels = sorted({int(t) for t in per_sample}) if per_sample is not None else [0]
    return [int(t) for t in labels]

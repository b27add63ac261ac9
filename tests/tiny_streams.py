"""Tiny Avalanche streams shared by tests (seconds on 2 CPU cores)."""

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche.benchmarks.utils.classification_dataset import (
    _make_taskaware_tensor_classification_dataset as tensor_dataset,
)


def tiny_benchmark(task_labels=(0, 1, 2), n=48):
    """One experience per entry of task_labels; 2 classes each, random features (B, 10)."""
    train, test = [], []
    for e, t in enumerate(task_labels):
        for split, size in ((train, n), (test, n // 2)):
            x = torch.randn(size, 10)
            y = torch.randint(2 * e, 2 * e + 2, (size,))
            split.append(tensor_dataset(x, y, task_labels=t))
    return with_task_labels(with_classes_timeline(benchmark_from_datasets(train=train, test=test)))

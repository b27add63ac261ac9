"""Tiny Avalanche streams and strategies shared by tests (seconds on 2 CPU cores)."""

import contextlib

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


def naive(model, *, epochs=1, plugins=(), weight_decay=0.0, eval_mb_size=1):
    """Avalanche's Naive over ``model`` with ``LazyAdamW`` (lr 1e-2), cross-entropy,
    minibatches of 16 and no evaluator metrics; ``strategy.optimizer`` is the optimizer."""
    from avalanche.training import Naive

    from lifelong.optim import LazyAdamW

    opt = LazyAdamW(model.parameters(), lr=1e-2, weight_decay=weight_decay)
    return Naive(
        model=model,
        optimizer=opt,
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=16,
        train_epochs=epochs,
        eval_mb_size=eval_mb_size,
        evaluator=None,
        plugins=list(plugins),
    )


@contextlib.contextmanager
def one_thread():
    """Tiny models run faster on one intra-op thread, and much faster when other processes
    load the 2 cores (OpenMP threads then wait on each other at every op)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

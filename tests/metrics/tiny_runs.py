"""Tiny real Avalanche runs for the plugin-metric tests (fixtures live in conftest.py).

Data are random Gaussian blobs, one centre per class and experience, so training moves the
accuracy matrix and forgetting is visible; everything runs in a few seconds on 2 CPU cores.
"""

import types

import torch
import torch.nn.functional as F
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche.benchmarks.utils import AvalancheDataset, DataAttribute
from avalanche.benchmarks.utils.classification_dataset import (
    _make_taskaware_tensor_classification_dataset,
)
from avalanche.benchmarks.utils.flat_data import ConstantSequence
from avalanche.core import SupervisedPlugin
from avalanche.logging import BaseLogger
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn
from torch.utils.data import TensorDataset

from lifelong.layers import PEER
from lifelong.metrics import ExperienceMatrix, ExpertUsageMetric
from lifelong.optim import LazyAdamW

IN_DIM, CLASSES, HEADS = 64, 10, 2


class Net(nn.Module):
    """(B, 64) -> (B, 10) through one PEER layer named "peer"."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(IN_DIM, 16)
        self.peer = PEER(16, num_experts=16, heads=HEADS, topk=2)
        self.out = nn.Linear(16, CLASSES)

    def forward(self, x):
        return self.out(self.peer(self.inp(x)))


class MemoryLogger(BaseLogger):
    """Keeps every logged (name, value, x) in order."""

    def __init__(self):
        super().__init__()
        self.records: list[tuple[str, object, int]] = []

    def log_single_metric(self, name, value, x_plot):
        self.records.append((name, value, x_plot))

    def values(self, name: str) -> list[tuple[int, object]]:
        return [(x, v) for n, v, x in self.records if n == name]


class HookProbe(SupervisedPlugin):
    """Records how many routing hooks a layer holds at every training iteration."""

    def __init__(self, layer):
        super().__init__()
        self.layer, self.counts = layer, []

    def after_training_iteration(self, strategy, **kwargs):
        self.counts.append(len(self.layer._routing_hooks))


def classification_benchmark(
    num_exp: int, n_train: int, n_test: int, *, seed: int = 0, task_aware: bool = True
):
    """Experience e: class c is a Gaussian blob around its own random centre mu_e[c]
    (new centres per experience, so learning one experience disturbs the others); task
    label e. ``benchmark_from_datasets`` experiences have no ``task_labels`` attribute in
    Avalanche 0.6 (metric names then lack the Task level); ``with_task_labels`` adds it."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for e in range(num_exp):
        centres = torch.randn(CLASSES, IN_DIM, generator=g)  # (10, 64)
        for n, out in ((n_train, train), (n_test, test)):
            y = torch.randint(0, CLASSES, (n,), generator=g)
            x = centres[y] + 0.5 * torch.randn(n, IN_DIM, generator=g)
            out.append(_make_taskaware_tensor_classification_dataset(x, y, task_labels=e))
    bm = benchmark_from_datasets(train=train, test=test)
    return with_task_labels(bm) if task_aware else bm


def lm_dataset(seqs: torch.Tensor, targets: torch.Tensor, task: int) -> AvalancheDataset:
    """(N, T) inputs and (N, T) next-byte targets, task label ``task`` for every sample.
    (The classification helper turns targets into scalars, so sequences need this.)"""
    labels = DataAttribute(ConstantSequence(task, len(seqs)), "targets_task_labels", True)
    return AvalancheDataset([TensorDataset(seqs, targets)], data_attributes=[labels])


class FlatCrossEntropy(nn.Module):
    """(B, T, V) logits, (B, T) targets -> mean token NLL (-100 targets ignored)."""

    def forward(self, logits, targets):
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def byte_lm_benchmark(num_exp: int = 2, n: int = 24, length: int = 12):
    """Experience e: random bytes from its own band [64e, 64e + 64); the last target of
    every other sequence is padding (-100)."""
    g = torch.Generator().manual_seed(1)
    streams = {"train": [], "test": []}
    for e in range(num_exp):
        for stream in streams:
            seq = torch.randint(64 * e, 64 * e + 64, (n, length + 1), generator=g)
            targets = seq[:, 1:].clone()
            targets[::2, -1] = -100
            streams[stream].append(lm_dataset(seq[:, :-1], targets, e))
    return with_task_labels(benchmark_from_datasets(**streams))


def make_strategy(model, metrics, logger, *, epochs=2, mb=32, lr=1e-2, criterion=None, **kwargs):
    return Naive(
        model=model,
        optimizer=LazyAdamW(model.parameters(), lr=lr),
        criterion=criterion or nn.CrossEntropyLoss(),
        train_mb_size=mb,
        eval_mb_size=mb,
        train_epochs=epochs,
        evaluator=EvaluationPlugin(*metrics, loggers=[logger]),
        device="cpu",
        **kwargs,
    )


@torch.no_grad()
def accuracy_of(model: nn.Module, dataset, batch_size: int = 32) -> float:
    """Accuracy of ``model`` on an Avalanche dataset, computed without Avalanche's loop."""
    model.eval()
    correct = total = 0
    for x, y, _ in torch.utils.data.DataLoader(dataset.eval(), batch_size=batch_size):
        correct += int((model(x).argmax(-1) == y).sum())
        total += y.numel()
    return correct / total


def classification_run():
    """3 experiences with a PEER grown by one sub-key per side before experiences 1 and 2;
    evaluated on the test stream before training and after each experience. During the
    last evaluation an independent routing hook sums the gates per test experience."""
    torch.manual_seed(0)
    bm = classification_benchmark(3, n_train=160, n_test=48)
    model = Net()
    matrix, usage, logger = ExperienceMatrix("accuracy"), ExpertUsageMetric(model), MemoryLogger()
    probe = HookProbe(model.peer)
    strategy = make_strategy(model, [matrix, usage], logger, epochs=4, plugins=[probe])
    strategy.eval(bm.test_stream)  # random init: fills matrix.initial
    own_mass: dict[int, torch.Tensor] = {}

    def own_hook(layer, idx, gates):  # idx, gates: (M, heads*topk)
        j = strategy.experience.logging().current_experience
        mass = own_mass.setdefault(j, torch.zeros(layer.num_experts, dtype=torch.float64))
        mass.index_add_(0, idx.reshape(-1), gates.reshape(-1).double())

    for i, exp in enumerate(bm.train_stream):
        if i > 0:
            model.peer.grow(1)
        strategy.train(exp)
        last = i == len(bm.train_stream) - 1
        handle = model.peer.register_routing_hook(own_hook) if last else None
        strategy.eval(bm.test_stream)
        if handle is not None:
            handle.remove()
    hooks_after = len(model.peer._routing_hooks)
    # Recomputed after the run, outside Avalanche: the last row of the matrix.
    last_row = [accuracy_of(model, exp.dataset) for exp in bm.test_stream]
    return types.SimpleNamespace(
        bm=bm,
        model=model,
        matrix=matrix,
        usage=usage,
        logger=logger,
        own_mass=own_mass,
        last_row=last_row,
        hooks_during_training=probe.counts,
        hooks_after=hooks_after,
        n_test=48,
    )

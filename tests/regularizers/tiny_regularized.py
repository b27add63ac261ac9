"""Tiny models, streams and runs for the regulariser tests (seconds on 2 CPU cores).

Streams come from tests/tiny_streams.py; ``peer_model`` follows tests/models/test_growing.py.
"""

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche.benchmarks.utils import AvalancheDataset, DataAttribute
from avalanche.benchmarks.utils.flat_data import ConstantSequence
from avalanche.core import SupervisedPlugin
from torch import nn
from torch.utils.data import TensorDataset

from lifelong.layers import PEER
from lifelong.models import Block, ByteTransformerLM
from lifelong.models.growing import GrowingExperts
from lifelong.models.mlp import MLPClassifier


def peer_model(head="multi", routing="task_aware"):
    """(B, 10) -> (B, 8): stem (shared) -> growing PEER -> task heads (or one shared head)."""
    ffn = GrowingExperts(PEER(16, num_experts=16, heads=2, topk=2), grow_size=2, routing=routing)
    return MLPClassifier(in_features=10, num_classes=8, dim=16, ffn=ffn, head=head)


def lm_model(seq_len=8):
    """(B, T) bytes -> (B, T, 256): one block whose FFN is a growing PEER."""
    ffn = GrowingExperts(PEER(16, num_experts=16, heads=2, topk=2), grow_size=2)
    tok, pos = nn.Embedding(256, 16), nn.Embedding(seq_len, 16)
    return ByteTransformerLM(tok=tok, pos=pos, blocks=[Block(16, 2, ffn)])


def lm_benchmark(n_exp=2, n=32, seq_len=8):
    """Experience e: random bytes from its own range of 32 values, task label e."""
    train, test = [], []
    for e in range(n_exp):
        for split, size in ((train, n), (test, n // 2)):
            seq = torch.randint(32 * e, 32 * e + 32, (size, seq_len + 1))
            labels = DataAttribute(ConstantSequence(e, size), "targets_task_labels", True)
            data = TensorDataset(seq[:, :-1], seq[:, 1:])
            split.append(AvalancheDataset([data], data_attributes=[labels]))
    return with_task_labels(benchmark_from_datasets(train=train, test=test))


class PenaltyRecorder(SupervisedPlugin):
    """After every backward: the regularisation plugin's penalties, and what the strategy's
    loss holds beyond the task loss (the criterion recomputed on the same output)."""

    def __init__(self, plugin):
        super().__init__()
        self.plugin = plugin
        self.penalties: list[list[float]] = []  # per experience: first penalty per iteration
        self.extra: list[float] = []  # loss - criterion, per iteration

    def before_training_exp(self, strategy, *args, **kwargs):
        self.penalties.append([])

    def after_backward(self, strategy, *args, **kwargs):
        self.penalties[-1].append(float(self.plugin.last_penalties[0]))
        with torch.no_grad():
            self.extra.append(float(strategy.loss - strategy.criterion()))

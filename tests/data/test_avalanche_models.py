"""Avalanche's own dynamic heads train on lifelong's streams (they index tensors with each
experience's classes, which must therefore be a list, not the set Avalanche stores)."""

import pytest
import torch
from avalanche.models import IncrementalClassifier, MultiHeadClassifier, MultiTaskModule
from avalanche.training import Naive
from torch import nn

from lifelong.data import build_stream


class MultiHead(MultiTaskModule):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
        self.head = MultiHeadClassifier(16, 2)

    def forward_single_task(self, x, task_label):
        return self.head(self.body(x), task_label)


class Incremental(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
        self.head = IncrementalClassifier(16, 2)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.parametrize("scenario,model", [("task-il", MultiHead), ("class-il", Incremental)])
def test_avalanche_dynamic_heads_train_on_split_digits(scenario, model):
    torch.manual_seed(0)
    spec = build_stream("split_digits", scenario=scenario, n_experiences=2)
    first = spec.benchmark.train_stream[0].classes_in_this_experience
    assert isinstance(first, list) and first == sorted(first)
    net = model()
    strategy = Naive(
        model=net,
        optimizer=torch.optim.Adam(net.parameters(), lr=0.01),
        train_mb_size=32,
        train_epochs=5,
        eval_mb_size=64,
    )
    for experience in spec.benchmark.train_stream:
        strategy.train(experience)
    last = spec.benchmark.test_stream[-1]
    results = strategy.eval([last])
    (accuracy,) = [v for k, v in results.items() if k.startswith("Top1_Acc_Stream/eval_phase")]
    assert accuracy > 0.8  # five digits each: chance is 0.2

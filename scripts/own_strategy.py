"""Your own Avalanche strategy with a lifelong model and lifelong metrics, no ``lifelong run``.

    python scripts/own_strategy.py            # Split Digits, task-IL: ~10 s on 2 cores

Every piece is a plain Avalanche or PyTorch object: a lifelong stream, a model of your
own whose FFN is a growing PEER layer and whose heads are Avalanche's
``MultiHeadClassifier``, lifelong's ``LazyAdamW`` for the row-sparse expert gradients,
Avalanche's ``Naive`` strategy and ``EvaluationPlugin`` with Avalanche's accuracy next to
lifelong's accuracy matrix and expert-usage metrics, and lifelong's plugin that freezes the
shared stem after the first task. docs/running.md shows this file.
"""

import argparse
import warnings

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.models import MultiHeadClassifier, MultiTaskModule
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

from lifelong.data import build_stream
from lifelong.layers import PEER
from lifelong.metrics import ExperienceMatrix, ExpertUsageMetric
from lifelong.models import GrowingExperts
from lifelong.optim import LazyAdamW
from lifelong.plugins import FreezeSharedPlugin


class GrowingClassifier(MultiTaskModule):
    """x (B, 8, 8) -> logits: a stem, a residual PEER FFN that grows a stage per task
    (old experts frozen, each task routed to its own stage), one Avalanche head per task."""

    def __init__(self, dim: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(64, dim), nn.ReLU())
        peer = PEER(dim, num_experts=16**2, heads=4, topk=4, sparse_grad=True)
        self.ffn = GrowingExperts(peer, grow_size=8, routing="task_aware")
        self.head = MultiHeadClassifier(dim, initial_out_features=2)

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        h = self.stem(x)  # (B, dim)
        labels = torch.full((x.shape[0],), task_label, dtype=torch.long, device=x.device)
        h = h + self.ffn(h, labels)  # the experts of the stage this task trained
        return self.head(h, task_label)


def main(epochs: int = 5) -> dict:
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    spec = build_stream("split_digits", scenario="task-il")  # 5 tasks of 2 digits
    model = GrowingClassifier()
    matrix = ExperienceMatrix("accuracy")  # lifelong: R[i][j], forgetting, BWT
    usage = ExpertUsageMetric(model)  # lifelong: expert usage and KL per stage
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True), matrix, usage, loggers=[])
    strategy = Naive(
        model=model,
        optimizer=LazyAdamW(model.parameters(), lr=3e-3),  # Avalanche adds grown experts
        train_mb_size=32,
        train_epochs=epochs,
        eval_mb_size=256,
        evaluator=evaluator,
        # The stem is shared by every task: frozen after the first, it cannot drift.
        plugins=[FreezeSharedPlugin(["stem"])],
    )
    for experience in spec.benchmark.train_stream:
        strategy.train(experience)
        strategy.eval(spec.benchmark.test_stream)
    report = {**matrix.report(), **usage.report()}
    print(f"average accuracy {report['average_accuracy']:.3f}")
    print(f"forgetting {report['forgetting']:.3f}  (old stages, heads and the stem are frozen)")
    print(f"expert usage {report['expert_usage']:.3f}, stages {model.ffn.layer.stage_sub_keys}")
    return report


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=5)
    main(p.parse_args().epochs)

"""Every kind trains and evaluates with an unmodified Avalanche `Naive` strategy."""

import math
import random
import warnings

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn
from torch.utils.data import TensorDataset

from lifelong.data import build_stream


def text_file(tmp_path):
    """A story of 600 words drawn at random: text that does not repeat one period, so its
    held-out windows do not all occur in its training text."""
    words = "once upon a time there was a byte stream that never ended".split()
    story = " ".join(random.Random(0).choices(words, k=600))
    path = tmp_path / "story.txt"
    path.write_text(story)
    return str(path)


def two_tensor_experiences():
    def pair(classes):
        y = torch.tensor(classes).repeat(8)
        return torch.randn(len(y), 5), y

    return [pair([0, 1]), pair([2, 3])], [pair([0, 1]), pair([2, 3])]


def options(kind: str, tmp_path, tiny_mnist_root) -> dict:
    """Small options per kind, so one training iteration takes milliseconds."""
    train, test = two_tensor_experiences()
    lm = dict(seq_len=16, train_sequences=32, test_sequences=8)
    return {
        "split_digits": dict(scenario="task-il"),
        "permuted_digits": dict(n_experiences=2),
        "text_domains": dict(domains=["python", "csv"], **lm),
        "text_files": dict(paths=[text_file(tmp_path)], **lm),
        "tensors": dict(train=train, test=test),
        "datasets": dict(
            train=[TensorDataset(*p) for p in train], test=[TensorDataset(*p) for p in test]
        ),
        "avalanche": dict(name="SplitMNIST", dataset_root=str(tiny_mnist_root)),
    }[kind]


class ByteLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(256, 8)
        self.out = nn.Linear(8, 256)

    def forward(self, x):  # (B, T) -> (B, T, 256)
        return self.out(self.embed(x))


def token_cross_entropy(logits, y):  # (B, T, V), (B, T)
    return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())


class RecordBatches(SupervisedPlugin):
    """Keeps the shapes and task labels of the training minibatches the strategy saw."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def after_training_iteration(self, strategy, *args, **kwargs):
        self.batches.append((strategy.mb_x.shape, strategy.mb_y.shape, strategy.mb_task_id))


@pytest.mark.parametrize(
    "kind",
    [
        "split_digits",
        "permuted_digits",
        "text_domains",
        "text_files",
        "tensors",
        "datasets",
        "avalanche",
    ],
)
def test_one_naive_iteration_and_evaluation(kind, tmp_path, tiny_mnist_root):
    spec = build_stream(kind, **options(kind, tmp_path, tiny_mnist_root))
    lm = spec.task == "lm"
    if lm:
        model, criterion = ByteLM(), token_cross_entropy
        # Avalanche's accuracy metric assumes one class per sample; LM runs track loss.
        metrics = [loss_metrics(experience=True, stream=True)]
    else:
        features = math.prod(spec.input_shape)
        model = nn.Sequential(nn.Flatten(), nn.Linear(features, spec.num_classes))
        criterion = nn.CrossEntropyLoss()
        metrics = [accuracy_metrics(experience=True), loss_metrics(experience=True)]
    record = RecordBatches()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No loggers specified"
        evaluator = EvaluationPlugin(*metrics, loggers=[])
    strategy = Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        criterion=criterion,
        train_mb_size=16,
        train_epochs=1,
        eval_mb_size=64,
        evaluator=evaluator,
        plugins=[record],
    )
    before = [p.detach().clone() for p in model.parameters()]
    first = spec.benchmark.train_stream[0]
    strategy.train(first)
    results = strategy.eval(spec.benchmark.test_stream)

    assert record.batches, "no training iteration ran"
    x_shape, y_shape, t = record.batches[0]
    assert tuple(x_shape[1:]) == spec.input_shape
    assert tuple(y_shape) == ((x_shape[0], spec.input_shape[0]) if lm else (x_shape[0],))
    assert t.tolist() == [first.task_label] * x_shape[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    losses = {k: v for k, v in results.items() if k.startswith("Loss_Exp/eval_phase/test_stream")}
    assert len(losses) == len(spec.benchmark.test_stream)
    assert all(math.isfinite(v) and v > 0 for v in losses.values())

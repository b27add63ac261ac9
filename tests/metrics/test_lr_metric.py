"""LearningRateMetric: hand-computed rates, and a real run under the cosine schedule against
the schedule's closed form (0.5·(1 + cos(π·k/K)) for step k of K, Loshchilov & Hutter)."""

import math
import types

import torch
from tiny_runs import MemoryLogger, classification_benchmark, make_strategy
from torch import nn

from lifelong.metrics import LearningRateMetric
from lifelong.plugins import LRSchedulePlugin

MEAN = "lifelong/LearningRate/train_phase/train_stream/mean"
LAST = "lifelong/LearningRate/train_phase/train_stream/last"


def fake_strategy():
    return types.SimpleNamespace(optimizer=types.SimpleNamespace(param_groups=[{"lr": 0.0}]))


def train_at(metric, strategy, rates):
    metric.before_training_exp(strategy)
    for lr in rates:
        strategy.optimizer.param_groups[0]["lr"] = lr
        metric.after_training_iteration(strategy)
    return metric.after_training_exp(strategy)


def test_mean_and_last_of_each_experience_emitted_once_with_the_next_evaluation():
    metric, strategy = LearningRateMetric(), fake_strategy()
    assert metric.before_eval(strategy) is None  # the evaluation before any training
    assert train_at(metric, strategy, [0.1, 0.2, 0.6]) is None
    first = metric.before_eval(strategy)
    assert {(v.name, round(v.value, 12), v.x_plot) for v in first} == {
        (MEAN, 0.3, 1),
        (LAST, 0.6, 1),
    }
    assert metric.before_eval(strategy) is None  # another evaluation: nothing new to say
    train_at(metric, strategy, [0.5])
    assert {(v.name, v.value, v.x_plot) for v in metric.before_eval(strategy)} == {
        (MEAN, 0.5, 2),
        (LAST, 0.5, 2),
    }
    assert metric.report() == {
        "learning_rate": [{"mean": 0.3, "last": 0.6}, {"mean": 0.5, "last": 0.5}]
    }


def test_an_experience_without_steps_adds_nothing_and_state_round_trips():
    metric, strategy = LearningRateMetric(), fake_strategy()
    assert metric.report() == {}  # metrics.json keeps its keys for a run that never trained
    train_at(metric, strategy, [])
    assert metric.report() == {} and metric.before_eval(strategy) is None
    train_at(metric, strategy, [0.25, 0.75])
    restored = LearningRateMetric()
    restored.load_state_dict(metric.state_dict())
    assert restored.report() == metric.report() == {"learning_rate": [{"mean": 0.5, "last": 0.75}]}


def test_a_cosine_run_reports_the_schedule_it_ran_at():
    torch.manual_seed(0)
    lr, n_train, mb = 0.01, 96, 32  # 3 steps per epoch, 2 epochs: K = 6 steps per experience
    bm = classification_benchmark(2, n_train=n_train, n_test=16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    metric, logger = LearningRateMetric(), MemoryLogger()
    strategy = make_strategy(
        model, [metric], logger, epochs=2, mb=mb, lr=lr, plugins=[LRSchedulePlugin(lr)]
    )
    for exp in bm.train_stream:
        strategy.train(exp)
        strategy.eval(bm.test_stream)
    steps = 2 * n_train // mb
    cosine = [lr * 0.5 * (1 + math.cos(math.pi * k / steps)) for k in range(steps)]
    expected = {"mean": sum(cosine) / steps, "last": cosine[-1]}
    rates = metric.report()["learning_rate"]
    assert len(rates) == 2
    for rate in rates:
        assert math.isclose(rate["mean"], expected["mean"], rel_tol=1e-12)
        assert math.isclose(rate["last"], expected["last"], rel_tol=1e-12)
    assert [x for x, _ in logger.values(LAST)] == [1, 2]

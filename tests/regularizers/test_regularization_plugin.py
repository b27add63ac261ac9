"""RegularizationPlugin inside Avalanche strategies, with growth and with replay."""

import pytest
import torch
from avalanche.training import Naive, Replay
from tiny_regularized import (
    PenaltyRecorder,
    lm_benchmark,
    lm_model,
    peer_model,
)
from tiny_streams import naive, one_thread, tiny_benchmark
from torch import nn

from lifelong.models import CrossEntropy
from lifelong.optim import LazyAdamW
from lifelong.regularizers import (
    DistillationRegularizer,
    RegularizationPlugin,
    build_regularizer,
    shared_parameters,
)

WEIGHT = 0.5
REGULARIZERS = {
    "l2": lambda: build_regularizer("l2"),
    "ewc": lambda: build_regularizer("ewc", decay=0.9),
    "si": lambda: build_regularizer("si", xi=0.1),
    # per-task heads: the previous model has no head for a new task label
    "distill": lambda: build_regularizer("distill", temperature=2.0, labels="previous"),
}


def train_stream(model, regularizer, *, strategy=Naive, bm=None, criterion=None, **kwargs):
    """Train ``model`` on every experience of ``bm``; returns the penalty recorder and, per
    experience, copies of the PEER stage trained on it (taken when it ended)."""
    plugin = RegularizationPlugin([regularizer], weights=[WEIGHT])
    recorder = PenaltyRecorder(plugin)
    opt = LazyAdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    strat = strategy(
        model=model,
        optimizer=opt,
        criterion=criterion or nn.CrossEntropyLoss(),
        train_mb_size=16,
        train_epochs=2,
        eval_mb_size=32,
        evaluator=None,
        plugins=[plugin, recorder],
        **kwargs,
    )
    layer = next(m for m in model.modules() if hasattr(m, "grow"))
    bm = bm or tiny_benchmark()
    snapshots = []
    with one_thread():
        for e, exp in enumerate(bm.train_stream):
            strat.train(exp)
            strat.eval(bm.test_stream)
            assert layer.num_stages == e + 1
            for stage, (up, down) in enumerate(snapshots):  # old experts: bit-identical
                assert torch.equal(layer.up[stage], up) and torch.equal(layer.down[stage], down)
            snapshots.append((layer.up[e].detach().clone(), layer.down[e].detach().clone()))
    return recorder


def check_penalties(recorder, n_exp):
    assert len(recorder.penalties) == n_exp
    assert all(p == 0.0 for p in recorder.penalties[0])  # nothing to protect yet
    for e in range(1, n_exp):
        assert max(recorder.penalties[e]) > 0, f"experience {e}: penalty always 0"
    # The strategy's loss holds exactly the task loss plus λ·penalty.
    flat = [p for exp in recorder.penalties for p in exp]
    assert recorder.extra == pytest.approx([WEIGHT * p for p in flat], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_each_regularizer_trains_with_growth(name):
    recorder = train_stream(peer_model(), REGULARIZERS[name]())
    check_penalties(recorder, 3)


def test_ewc_with_replay_and_growth():
    recorder = train_stream(peer_model(), REGULARIZERS["ewc"](), strategy=Replay, mem_size=20)
    check_penalties(recorder, 3)


def test_language_model_with_distillation_and_growth():
    recorder = train_stream(
        lm_model(), DistillationRegularizer(), bm=lm_benchmark(), criterion=CrossEntropy()
    )
    check_penalties(recorder, 2)


def test_a_large_weight_holds_the_shared_parameters_near_the_anchor():
    """The penalty reaches the optimizer: L2 with a large λ keeps the stem where the first
    experience left it, while without it the stem moves on."""

    def drift(weight):
        torch.manual_seed(0)
        model = peer_model()
        reg = build_regularizer("l2")
        strat = naive(model, epochs=2, plugins=[RegularizationPlugin([reg], weights=[weight])])
        bm = tiny_benchmark()
        with one_thread():
            strat.train(bm.train_stream[0])
            anchor = {n: p.detach().clone() for n, p in shared_parameters(model).items()}
            strat.train(bm.train_stream[1])
        return sum((p - anchor[n]).norm() ** 2 for n, p in shared_parameters(model).items())

    assert drift(100.0) < 0.1 * drift(0.0)


def test_plugin_needs_one_weight_per_regularizer():
    with pytest.raises(ValueError, match="2 regularizers but 1 weights"):
        RegularizationPlugin([build_regularizer("l2"), build_regularizer("si")], weights=[1.0])

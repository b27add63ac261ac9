"""RUN_METRICS in tiny runs: each metric's ``report()`` (the metrics.json figures) and
``save_plots`` (the PNGs) against values computed here from the metric's own records."""

import json
import math
import types

import pytest
import torch
from tiny_runs import (
    CLASSES,
    HEADS,
    IN_DIM,
    FlatCrossEntropy,
    MemoryLogger,
    byte_lm_benchmark,
    classification_benchmark,
    make_strategy,
)
from tiny_streams import one_thread
from torch import nn

from lifelong.layers import PEER
from lifelong.layers.moe import TokenChoiceMoE
from lifelong.metrics import (
    RUN_METRICS,
    ExperienceMatrix,
    ExpertUsageMetric,
    LearningRateMetric,
    MoEMetric,
    expert_usage,
    kl_nonuniformity,
    run_metrics,
    summarize_matrix,
    usage_grid,
    usage_metric,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_TEST = 16


class PeerMoENet(nn.Module):
    """(B, 64) -> (B, 10) through a PEER "blocks.0" and a token-choice MoE "blocks.1"."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(IN_DIM, 16)
        self.blocks = nn.ModuleList(
            [
                PEER(16, num_experts=16, heads=HEADS, topk=2),
                TokenChoiceMoE(16, num_experts=4, hidden=16),
            ]
        )
        self.out = nn.Linear(16, CLASSES)

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def tiny_run(task: str, model: nn.Module, bm, **strategy_kwargs):
    """``run_metrics(task, model)`` through an initial evaluation, then training and
    evaluation on each experience, as ``lifelong.training.run`` does."""
    metrics = run_metrics(task, model)
    strategy = make_strategy(model, list(metrics.values()), MemoryLogger(), **strategy_kwargs)
    with one_thread():  # module fixtures start before the per-test one_thread fixture
        strategy.eval(bm.test_stream)
        for exp in bm.train_stream:
            strategy.train(exp)
            strategy.eval(bm.test_stream)
    return types.SimpleNamespace(model=model, metrics=metrics)


@pytest.fixture(scope="module")
def classification():
    torch.manual_seed(0)
    bm = classification_benchmark(2, n_train=32, n_test=N_TEST)
    return tiny_run("classification", PeerMoENet(), bm, epochs=1, mb=16)


@pytest.fixture(scope="module")
def lm():
    """A byte language model without expert layers."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(256, 16), nn.Linear(16, 256))  # (B, T) -> (B, T, 256)
    return tiny_run("lm", model, byte_lm_benchmark(), epochs=1, mb=8, criterion=FlatCrossEntropy())


def matrix_keys(kind: str, average: str) -> list[str]:
    return [f"{kind}_matrix", average, "forgetting", "bwt", "fwt", f"initial_{kind}"]


def test_the_list_names_the_checkpoint_keys_and_builds_per_task():
    names = ["matrix", "usage", "moe", "task_inference", "learning_rate"]
    assert [name for name, _ in RUN_METRICS] == names
    model = PeerMoENet()
    metrics = run_metrics("classification", model)
    assert list(metrics) == names
    assert isinstance(metrics["matrix"], ExperienceMatrix) and metrics["matrix"].kind == "accuracy"
    assert isinstance(metrics["usage"], ExpertUsageMetric) and metrics["usage"].model is model
    assert isinstance(metrics["moe"], MoEMetric) and metrics["moe"].model is None
    assert isinstance(metrics["learning_rate"], LearningRateMetric)
    assert run_metrics("lm", model)["matrix"].kind == "perplexity"


def test_classification_reports(classification):
    matrix, usage, moe, inference, rate = classification.metrics.values()
    assert inference.report() == {}  # no layer infers its experience: metrics.json unchanged
    # make_strategy's constant rate, once per trained experience
    assert rate.report() == {"learning_rate": [{"mean": 1e-2, "last": 1e-2}] * 2}
    report = matrix.report()
    assert list(report) == matrix_keys("accuracy", "average_accuracy")
    R, initial = matrix.matrix, matrix.initial
    assert len(R) == 2 and report["accuracy_matrix"] == R and report["initial_accuracy"] == initial
    assert report["average_accuracy"] == pytest.approx((R[-1][0] + R[-1][1]) / 2)
    summary = summarize_matrix(R, initial=initial)
    figures = [report[k] for k in ("forgetting", "bwt", "fwt")]
    assert figures == [summary["forgetting"], summary["bwt"], summary["fwt"]]
    assert None not in figures  # two rows and an initial evaluation: all are defined

    report = usage.report()
    keys = ["expert_usage", "kl_nonuniformity", "kl_nonuniformity_normalized", "expert_layers"]
    assert list(report) == keys
    layers = report["expert_layers"]
    assert layers == usage.latest_overall() and list(layers) == ["blocks.0", "blocks.1"]
    assert report["expert_usage"] == pytest.approx(
        (layers["blocks.0"]["usage"] + layers["blocks.1"]["usage"]) / 2
    )
    assert report["kl_nonuniformity"] == pytest.approx(
        (layers["blocks.0"]["kl"] + layers["blocks.1"]["kl"]) / 2
    )
    # KL / log N puts the 16-expert PEER and the 4-expert MoE on one scale.
    peer, moe_layer = layers["blocks.0"], layers["blocks.1"]
    assert peer["kl_normalized"] == pytest.approx(peer["kl"] / math.log(16))
    assert moe_layer["kl_normalized"] == pytest.approx(moe_layer["kl"] / math.log(4))
    assert report["kl_nonuniformity_normalized"] == pytest.approx(
        (peer["kl_normalized"] + moe_layer["kl_normalized"]) / 2
    )

    report = moe.report()
    assert report == {"moe_layers": moe.latest_overall()} and list(report["moe_layers"]) == [
        "blocks.1"
    ]
    merged = {**matrix.report(), **usage.report(), **moe.report()}
    assert json.loads(json.dumps(merged)) == merged  # metrics.json holds them as they are


def test_classification_plots(classification, tmp_path, monkeypatch):
    drawn = {}
    draw = usage_metric.usage_png

    def spy(grid, path, *args, **kwargs):
        drawn[path.name] = grid
        return draw(grid, path, *args, **kwargs)

    monkeypatch.setattr(usage_metric, "usage_png", spy)
    for metric in classification.metrics.values():
        metric.save_plots(tmp_path)
    # Only the PEER has a sub-key grid; the MoE layer gets no usage map, MoEMetric no PNG.
    files = {"accuracy_matrix.png", "forgetting_curves.png", "usage_blocks_0.png"}
    assert {p.name for p in tmp_path.iterdir()} == files
    assert all((tmp_path / f).read_bytes()[:8] == PNG_MAGIC for f in files)
    # The map is the mass summed over the last evaluation: both test experiences, each
    # token giving every head's gates, which sum to one.
    usage = classification.metrics["usage"]
    last = [h for h in usage.history if h["trained"] == 2 and h["layer"] == "blocks.0"]
    assert len(last) == 2
    total = last[0]["mass"] + last[1]["mass"]
    assert torch.allclose(drawn["usage_blocks_0.png"], usage_grid(total, 4), rtol=1e-12, atol=0)
    assert float(total.sum()) == pytest.approx(2 * N_TEST * HEADS)
    overall = usage.latest_overall()["blocks.0"]
    assert overall["usage"] == pytest.approx(expert_usage(total))
    assert overall["kl"] == pytest.approx(kl_nonuniformity(total))


def test_lm_run_without_expert_layers(lm, tmp_path):
    matrix, usage, moe, inference, _ = lm.metrics.values()
    assert inference.report() == {}
    report = matrix.report()
    bits_keys = ["bits_per_byte_matrix", "bits_per_byte", "forgetting_bits_per_byte"]
    assert list(report) == [*matrix_keys("perplexity", "perplexity"), *bits_keys]
    R = matrix.matrix
    # The headline is the geometric mean of the last row: exp of the mean loss.
    assert report["perplexity"] == pytest.approx(math.sqrt(R[-1][0] * R[-1][1]))
    assert report["perplexity"] > 1
    bits = [[math.log(v) / math.log(2) for v in row] for row in R]
    assert [pytest.approx(row) for row in bits] == report["bits_per_byte_matrix"]
    assert report["bits_per_byte"] == pytest.approx((bits[-1][0] + bits[-1][1]) / 2)
    assert report["forgetting_bits_per_byte"] == pytest.approx(bits[1][0] - bits[0][0])
    summary = summarize_matrix(R, higher_is_better=False, initial=matrix.initial)
    assert [report[k] for k in ("forgetting", "bwt", "fwt")] == pytest.approx(
        [summary["forgetting"], summary["bwt"], summary["fwt"]]
    )
    assert usage.report() == {
        "expert_usage": None,
        "kl_nonuniformity": None,
        "kl_nonuniformity_normalized": None,
        "expert_layers": {},
    }
    assert moe.report() == {}  # no MoE layer: metrics.json keeps its keys
    for metric in lm.metrics.values():
        metric.save_plots(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "perplexity_matrix.png",
        "forgetting_curves.png",
    }


def test_reports_before_any_evaluation(tmp_path):
    metrics = run_metrics("classification", PeerMoENet())
    matrix, usage, moe, inference, rate = metrics.values()
    for metric in metrics.values():
        metric.save_plots(tmp_path, experience_names=["a", "b"])
    assert list(tmp_path.iterdir()) == []  # nothing to draw yet, and no error
    assert inference.report() == {}
    assert matrix.report() == dict.fromkeys(matrix_keys("accuracy", "average_accuracy")) | {
        "accuracy_matrix": []
    }
    assert usage.report() == {
        "expert_usage": None,
        "kl_nonuniformity": None,
        "kl_nonuniformity_normalized": None,
        "expert_layers": {},
    }
    assert moe.report() == {}
    assert rate.report() == {}  # no experience trained: metrics.json keeps its keys


def test_checkpointed_state_restores_the_reports(classification):
    fresh = run_metrics("classification", classification.model)
    for name, metric in classification.metrics.items():
        state = metric.state_dict()
        if name not in ("matrix", "learning_rate"):  # what existing checkpoints hold
            assert set(state) == {"trained", "history", "_latest_overall"}
        fresh[name].load_state_dict(state)
        assert fresh[name].report() == metric.report()

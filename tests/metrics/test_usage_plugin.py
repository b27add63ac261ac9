"""ExpertUsageMetric driven by a real Avalanche strategy with a growing PEER layer."""

import pytest
import torch
from avalanche.evaluation.metric_results import TensorImage
from avalanche.logging import TensorboardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_runs import HEADS, MemoryLogger, Net, classification_benchmark, make_strategy
from torch import nn

from lifelong.metrics import (
    ExperienceMatrix,
    ExpertUsageMetric,
    expert_usage,
    kl_nonuniformity,
)
from lifelong.metrics.usage_image import cell_pixels

USAGE = "lifelong/ExpertUsage/eval_phase/test_stream"
KL = "lifelong/KL_Nonuniformity/eval_phase/test_stream"
# The run's PEER grew 4 -> 5 -> 6 sub-keys per side; in shell order stage s owns the ids
# [n_{s-1}², n_s²) (docs/design.md §2).
STAGES = [slice(0, 16), slice(16, 25), slice(25, 36)]


def last_eval(run) -> dict[int, dict]:
    """History entries of the evaluation after the last experience, by experience id."""
    return {h["experience"]: h for h in run.usage.history if h["trained"] == 3}


def test_mass_equals_the_gates_summed_by_an_independent_hook(classification_run):
    run = classification_run
    entries = last_eval(run)
    assert sorted(entries) == sorted(run.own_mass) == [0, 1, 2]
    for j, h in entries.items():
        assert h["layer"] == "peer"
        assert torch.allclose(h["mass"], run.own_mass[j], rtol=1e-12, atol=0)
        # Each head's softmax gates sum to one per token: total mass = tokens * heads.
        assert float(h["mass"].sum()) == pytest.approx(run.n_test * HEADS)


def test_hooks_live_only_during_evaluation(classification_run):
    run = classification_run
    assert run.hooks_during_training and set(run.hooks_during_training) == {0}
    assert run.hooks_after == 0


def test_mass_follows_the_growing_layer(classification_run):
    run = classification_run
    # Evaluations: before training (trained=0), then after each of the 3 experiences; the
    # layer grew 4 -> 5 -> 6 sub-keys per side before experiences 1 and 2.
    sizes = {h["trained"]: (h["mass"].numel(), h["stage_bounds"]) for h in run.usage.history}
    assert sizes == {0: (16, [16]), 1: (16, [16]), 2: (25, [16, 25]), 3: (36, [16, 25, 36])}
    assert len(run.usage.history) == 4 * 3


def test_emitted_values_per_experience_and_stage(classification_run):
    run = classification_run
    for j, h in last_eval(run).items():
        mass = h["mass"]
        assert run.logger.values(f"{USAGE}/Exp{j:03d}/peer")[-1] == (
            3,
            pytest.approx(expert_usage(mass)),
        )
        assert run.logger.values(f"{KL}/Exp{j:03d}/peer")[-1] == (
            3,
            pytest.approx(kl_nonuniformity(mass)),
        )
        for s, sl in enumerate(STAGES):
            x, usage = run.logger.values(f"{USAGE}/Exp{j:03d}/peer/stage{s}")[-1]
            assert (x, usage) == (3, pytest.approx(expert_usage(mass[sl])))
        x, image = run.logger.values(
            f"lifelong/ExpertUsageMap/eval_phase/test_stream/Exp{j:03d}/peer"
        )[-1]
        assert x == 3 and isinstance(image, TensorImage)
        # The 6 x 6 sub-key grid, each cell a block of pixels, then the colour strip.
        assert image.image.shape[:2] == (3, 6 * cell_pixels(6)) and image.image.dtype == torch.uint8
    # Stage 2 did not exist when experience 1 ended: no such value at x = 2.
    assert [x for x, _ in run.logger.values(f"{USAGE}/Exp000/peer/stage2")] == [3]


def test_overall_values_sum_the_stream(classification_run):
    run = classification_run
    total = sum(h["mass"] for h in last_eval(run).values())
    overall = run.usage.latest_overall()["peer"]
    assert overall["usage"] == pytest.approx(expert_usage(total))
    assert overall["kl"] == pytest.approx(kl_nonuniformity(total))
    assert [st["usage"] for st in overall["per_stage"]] == pytest.approx(
        [expert_usage(total[sl]) for sl in STAGES]
    )
    assert run.logger.values(f"{USAGE}/peer")[-1] == (3, pytest.approx(overall["usage"]))
    assert run.logger.values(f"{KL}/peer/stage1")[-1] == (
        3,
        pytest.approx(overall["per_stage"][1]["kl"]),
    )
    assert run.usage.result() == run.usage.latest_overall()


def test_experience_names_past_ten_and_tensorboard_accepts_every_value(tmp_path):
    """11 experiences: names carry Exp010; TensorBoard stores the scalars and the heatmaps
    (a TensorImage goes to add_image)."""
    torch.manual_seed(0)
    bm = classification_benchmark(11, n_train=8, n_test=8)
    model = Net()
    tb = TensorboardLogger(tmp_path)
    strategy = make_strategy(
        model, [ExperienceMatrix(), ExpertUsageMetric(model)], tb, epochs=1, mb=8
    )
    for exp in bm.train_stream[:1]:
        strategy.train(exp)
    strategy.eval(bm.test_stream)
    tb.writer.flush()
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars, images = set(events.Tags()["scalars"]), set(events.Tags()["images"])
    assert f"{USAGE}/Exp010/peer" in scalars and f"{KL}/peer" in scalars
    assert "lifelong/Top1_Acc_Exp/eval_phase/test_stream/Task010/Exp010" in scalars
    assert "lifelong/ExpertUsageMap/eval_phase/test_stream/Exp010/peer" in images
    assert "lifelong/ExpertUsageMap/eval_phase/test_stream/peer" in images
    assert events.Scalars(f"{USAGE}/Exp010/peer")[0].step == 1


def test_model_defaults_to_the_strategy_model_and_layers_are_named_by_path():
    torch.manual_seed(0)
    bm = classification_benchmark(1, n_train=8, n_test=8)
    model = nn.Sequential(Net(), nn.Linear(10, 10))  # the PEER is at "0.peer"
    usage, logger = ExpertUsageMetric(heatmap_max_side=3), MemoryLogger()
    strategy = make_strategy(model, [usage], logger, epochs=1, mb=8)
    strategy.train(bm.train_stream[0])
    strategy.eval(bm.test_stream)
    assert list(usage.latest_overall()) == ["0.peer"]
    # 4x4 sub-keys pooled to at most 3x3: factor 2, a 2x2 grid of cells.
    _, image = logger.values("lifelong/ExpertUsageMap/eval_phase/test_stream/Exp000/0.peer")[-1]
    assert image.image.shape[:2] == (3, 2 * cell_pixels(2))

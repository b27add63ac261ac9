"""Every shipped smoke config runs end to end and leaves what a researcher inspects."""

import json
import math
import re
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar.metadata import CONFIG_SUMMARY_TAG

from lifelong.config import load_config
from lifelong.metrics.tensorboard_layout import PER_EXPERIENCE
from lifelong.training.run import RunError, run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMOKES = sorted(p.name for p in CONFIGS.glob("*_smoke.yaml"))


def events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.mark.parametrize("name", SMOKES)
def test_smoke_config_runs_and_reports(name, tmp_path):
    cfg = load_config(CONFIGS / name, [f"runs_dir={tmp_path}"])
    run_dir = run(cfg)
    assert run_dir == tmp_path / cfg.name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    lm = cfg.model.kind == "transformer"
    matrix = metrics["perplexity_matrix" if lm else "accuracy_matrix"]
    n = len(metrics["experience_names"])
    assert len(matrix) == n and all(len(row) == n for row in matrix)
    headline = metrics["perplexity" if lm else "average_accuracy"]
    if not lm:
        assert headline == pytest.approx(sum(matrix[-1]) / n)
    for key in ("forgetting", "bwt", "expert_usage", "kl_nonuniformity"):
        assert isinstance(metrics[key], float), key
    assert 0 < metrics["expert_usage"] <= 1 and metrics["kl_nonuniformity"] >= 0
    assert 0 <= metrics["kl_nonuniformity_normalized"] <= 1
    params = metrics["params"]
    assert 0 < params["active_per_token"] < params["total"]
    assert 0 < params["trainable"] < params["total"]  # growth froze the old stages
    if lm:
        bits = metrics["bits_per_byte_matrix"]
        assert len(bits) == n and bits[-1] == pytest.approx([math.log2(v) for v in matrix[-1]])
        assert headline == pytest.approx(2 ** (sum(bits[-1]) / n))  # the geometric mean

    assert (run_dir / "config.yaml").is_file()
    pngs = {p.name for p in run_dir.glob("*.png")}
    kind = "perplexity" if lm else "accuracy"
    assert {f"{kind}_matrix.png", "forgetting_curves.png"} <= pngs
    assert any(p.startswith("usage_") for p in pngs)

    acc = events(run_dir)
    tags = acc.Tags()
    curve = "lifelong/Perplexity_Exp" if lm else "lifelong/Top1_Acc_Exp"
    curves = [t for t in tags["scalars"] if t.startswith(curve)]
    assert len(curves) == n  # one forgetting curve per experience ...
    assert len(acc.Scalars(curves[0])) >= n  # ... with a point after every experience
    assert any(t.startswith("lifelong/KL_Nonuniformity") for t in tags["scalars"])
    assert any(t.startswith("lifelong/ExpertUsage/") for t in tags["scalars"])
    assert any(t.startswith("lifelong/ExpertUsageMap") for t in tags["images"])
    assert acc.PluginTagToContent("hparams"), "hparams summary missing"
    # The custom-scalars layout: every chart draws something, the forgetting-curve chart
    # one series per experience (TensorBoard's plugin matches with re.match).
    charts = layout_charts(acc)
    assert all(
        any(re.match(regex, t) for regex in chart.multiline.tag for t in tags["scalars"])
        for chart in charts.values()
    )
    (regex,) = charts[PER_EXPERIENCE].multiline.tag
    assert sorted(t for t in tags["scalars"] if re.match(regex, t)) == sorted(curves)


def layout_charts(acc: EventAccumulator) -> dict:
    """{title: layout_pb2.Chart} of the custom-scalars layout in the run's events."""
    (event,) = acc.Tensors(CONFIG_SUMMARY_TAG)
    layout = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    return {chart.title: chart for category in layout.category for chart in category.chart}


def test_split_digits_task_il_does_not_forget(tmp_path):
    """Task-aware routing over frozen stages: earlier tasks keep their exact accuracy. The
    heads are masked to their task's two classes, so before training they score at chance
    and forward transfer is measured against it."""
    cfg = load_config(CONFIGS / "split_digits_task_il_smoke.yaml", [f"runs_dir={tmp_path}"])
    metrics = json.loads((run(cfg) / "metrics.json").read_text())
    matrix = metrics["accuracy_matrix"]
    for j in range(len(matrix)):
        assert all(row[j] == matrix[j][j] for row in matrix[j:]), f"experience {j} changed"
    assert metrics["forgetting"] == 0.0
    assert metrics["initial_accuracy"] == pytest.approx([0.5] * len(matrix), abs=0.1)
    # One of the five task heads counts as active per token.
    params = metrics["params"]
    head = 64 * 10 + 10
    assert params["total"] - params["active_per_token"] >= 4 * head


@pytest.mark.parametrize("regularizer", ["ewc", "distill"])
def test_regularizer_from_config_composes_with_growth(regularizer, tmp_path):
    overrides = [f"runs_dir={tmp_path}", f"train.regularizer={regularizer}", "train.epochs=1"]
    cfg = load_config(CONFIGS / "permuted_digits_smoke.yaml", overrides)
    metrics = json.loads((run(cfg) / "metrics.json").read_text())
    assert len(metrics["accuracy_matrix"]) == 3


def test_unknown_regularizer_option_is_refused(tmp_path):
    overrides = [
        f"runs_dir={tmp_path}",
        "train.regularizer=ewc",
        "train.regularizer_options.gamma=1",
    ]
    with pytest.raises(ValueError, match="has no option 'gamma'"):
        run(load_config(CONFIGS / "permuted_digits_smoke.yaml", overrides))


def test_existing_run_directory_is_refused(tmp_path):
    cfg = load_config(CONFIGS / "split_digits_class_il_smoke.yaml", [f"runs_dir={tmp_path}"])
    (tmp_path / cfg.name).mkdir()
    (tmp_path / cfg.name / "keep.txt").write_text("precious")
    with pytest.raises(RunError, match="already exists"):
        run(cfg)
    assert (tmp_path / cfg.name / "keep.txt").read_text() == "precious"

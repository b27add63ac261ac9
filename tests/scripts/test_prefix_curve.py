"""scripts/prefix_curve.py on a smoke LM run: its per-position curve, averaged, is the run's
own task-inference accuracy (counted by TaskInferenceMetric over every token)."""

import importlib.util
import json
from pathlib import Path

import pytest

from lifelong.config import load_config
from lifelong.training.run import run

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("prefix_curve", ROOT / "scripts/prefix_curve.py")
prefix_curve = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prefix_curve)


def test_the_curve_averages_to_the_run_s_task_inference_accuracy(tmp_path):
    quiet = ["log.progress=false", "log.tensorboard=false", "log.png=false"]
    cfg = load_config(
        ROOT / "configs/text_domains_smoke.yaml",
        ["growth.routing=inferred", f"runs_dir={tmp_path}", *quiet],
    )
    run_dir = run(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model, test_stream = prefix_curve.load_run(run_dir)
    curves = prefix_curve.prefix_accuracy(model, test_stream)
    assert len(curves) == len(metrics["task_inference_matrix"]) and len(curves[0]) == 32
    # Every test experience has as many windows: the mean of means is the token average.
    mean = sum(sum(c) for c in curves) / (len(curves) * len(curves[0]))
    assert mean == pytest.approx(metrics["task_inference_accuracy"])
    assert prefix_curve.main([str(run_dir), "--png", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"

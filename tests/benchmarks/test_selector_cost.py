"""The selector-cost benchmark on the class-IL smoke stream: its inferred evaluation is the
run's own (the last row of the accuracy matrix), and the oracle routes by the experience."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("selector_cost", ROOT / "benchmarks/selector_cost.py")
selector_cost = importlib.util.module_from_spec(spec)
spec.loader.exec_module(selector_cost)

SMOKE = "configs/split_digits_class_il_smoke.yaml"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return selector_cost.trained(SMOKE, [], tmp_path_factory.mktemp("runs"))


def test_inferred_evaluation_reproduces_the_run_and_the_oracle_knows_the_experience(smoke):
    cfg, model, task, test_stream, run_dir = smoke
    metrics = json.loads((run_dir / "metrics.json").read_text())
    batch = cfg.train.eval_batch_size
    _, inferred, choosing = selector_cost.evaluate(model, test_stream, "accuracy", batch, False)
    _, oracle, none = selector_cost.evaluate(model, test_stream, "accuracy", batch, True)
    assert inferred == pytest.approx(metrics["average_accuracy"])
    assert choosing > 0 and none == 0  # the oracle never asks the selector
    # Routed by the true experience, each sample meets its own pair's head: task-IL, at
    # least as good as guessing the experience (the selector is right ~97% of the time).
    assert oracle >= inferred and metrics["task_inference_accuracy"] < 1.0


def test_the_record(smoke):
    cfg, model, task, test_stream, _ = smoke
    record = selector_cost.timed(cfg, model, task, test_stream, repeats=2)
    assert record["ratio"] == pytest.approx(record["inferred_eval_s"] / record["oracle_eval_s"])
    share = record["selector_s"] / (record["inferred_eval_s"] - record["selector_s"])
    assert 0 < record["selector_s"] < record["inferred_eval_s"]
    assert record["selector_share"] == pytest.approx(share)
    assert record["selector_bytes"] > 0 and record["metric"] == "accuracy"
    assert 0 < record["inferred_accuracy"] <= record["oracle_accuracy"] <= 1


def test_the_run_s_own_evaluation_is_timed_both_ways(smoke):
    *_, run_dir = smoke
    record = selector_cost.run_evaluation(run_dir, repeats=1)
    assert record["run_eval_inferred_s"] > 0 and record["run_eval_oracle_s"] > 0
    ratio = record["run_eval_inferred_s"] / record["run_eval_oracle_s"]
    assert record["run_ratio"] == pytest.approx(ratio)

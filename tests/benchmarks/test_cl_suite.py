"""The suite's aggregation: mean ± std over seeds, and the markdown table it writes."""

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "cl_suite.py"
spec = importlib.util.spec_from_file_location("cl_suite", PATH)
cl_suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cl_suite)


def fake_run(acc, forgetting, usage):
    return {
        "average_accuracy": acc,
        "forgetting": forgetting,
        "wall_s": 2.0,
        "expert_usage": usage,
        "kl_nonuniformity": None if usage is None else 1.0,
        "active_params_per_token": 100,
    }


def test_summarize_is_mean_and_population_std_over_seeds():
    runs = [fake_run(0.9, 0.1, 0.5), fake_run(0.7, 0.3, 0.7)]
    record = cl_suite.summarize("split_digits_task_il", "dense naive", runs)
    assert record["average_accuracy"] == pytest.approx([0.8, 0.1])
    assert record["forgetting"] == pytest.approx([0.2, 0.1])
    assert record["expert_usage"] == pytest.approx([0.6, 0.1])
    assert record["seeds"] == 2 and record["scenario"] == "task-il"
    dense = cl_suite.summarize("split_digits_task_il", "dense naive", [fake_run(0.9, 0.1, None)])
    assert dense["expert_usage"] is None and dense["kl_nonuniformity"] is None


def test_markdown_lists_every_cell_and_the_active_parameters():
    records = [
        cl_suite.summarize("split_digits_task_il", m, [fake_run(0.9, 0.0, 0.5)])
        for m in ("dense naive", "PEER + growth, task-aware")
    ]
    text = cl_suite.markdown(records, quick=True, seeds=1)
    assert "## split_digits_task_il (task-il" in text
    assert "| dense naive | 0.900 ± 0.000 |" in text
    assert "| PEER + growth, task-aware |" in text
    assert "equal within 0%" in text


def test_every_method_runs_on_every_stream_config():
    """Each method's overrides load onto each stream's config (no typo reaches a long run)."""
    from lifelong.config import load_config

    for stream, (config, scenario, quick) in cl_suite.STREAMS.items():
        for method in cl_suite.METHODS:
            if method in cl_suite.NOT_FOR_LM and scenario == "lm":
                continue
            overrides = cl_suite.method_overrides(stream, method)
            cfg = load_config(cl_suite.ROOT / "configs" / config, [*quick, *overrides])
            cl_suite.equalize_active_params(cfg)


def test_stream_method_overrides_apply_to_their_stream_only():
    for stream, method in cl_suite.STREAM_METHOD_OVERRIDES:
        assert stream in cl_suite.STREAMS and method in cl_suite.METHODS
    peer_replay = "PEER + growth + replay"
    class_il = cl_suite.method_overrides("split_digits_class_il", peer_replay)
    assert class_il == [*cl_suite.METHODS[peer_replay], "growth.freeze_query=false"]
    assert (
        cl_suite.method_overrides("permuted_digits", peer_replay) == (cl_suite.METHODS[peer_replay])
    )

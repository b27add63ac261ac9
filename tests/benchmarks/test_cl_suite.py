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
        "kl_nonuniformity_normalized": None if usage is None else 0.25,
        "params": {"total": 1000, "trainable": 500, "active_per_token": 100},
    }


def test_summarize_is_mean_and_population_std_over_seeds():
    runs = [fake_run(0.9, 0.1, 0.5), fake_run(0.7, 0.3, 0.7)]
    record = cl_suite.summarize("split_digits_task_il", "dense naive", runs)
    assert record["average_accuracy"] == pytest.approx([0.8, 0.1])
    assert record["forgetting"] == pytest.approx([0.2, 0.1])
    assert record["expert_usage"] == pytest.approx([0.6, 0.1])
    assert record["kl_nonuniformity_normalized"] == pytest.approx([0.25, 0.0])
    assert (record["params_total"], record["params_active_per_token"]) == (1000, 100)
    assert record["seeds"] == 2 and record["scenario"] == "task-il"
    dense = cl_suite.summarize("split_digits_task_il", "dense naive", [fake_run(0.9, 0.1, None)])
    assert dense["expert_usage"] is None and dense["kl_nonuniformity_normalized"] is None


def test_markdown_lists_every_cell_and_the_parameters():
    records = [
        cl_suite.summarize("split_digits_task_il", m, [fake_run(0.9, 0.0, 0.5)])
        for m in ("dense naive", "PEER + growth, task label at test")
    ]
    text = cl_suite.markdown(records, quick=True, seeds=1)
    assert "## split_digits_task_il (task-il" in text
    row = "| dense naive | 0.900 ± 0.000 | 0.000 ± 0.000 | – | 0.500 ± 0.000 | 0.250 ± 0.000 "
    assert row in text  # no stage inferred: "–"
    assert "| 1,000 | 100 |" in text
    assert "| PEER + growth, task label at test |" in text


def test_rows_read_the_task_label_only_where_the_stream_gives_it():
    names = {s: {m.name for m in cl_suite.methods_for(s)} for s in cl_suite.STREAMS}
    aware, free = "PEER + growth, task label at test", "PEER + growth, no task label"
    assert aware in names["split_digits_task_il"] and free not in names["split_digits_task_il"]
    for stream in ("split_digits_class_il", "permuted_digits"):
        assert free in names[stream] and aware not in names[stream]
    assert {aware, free, "PEER + growth in every block"} <= names["text_domains"]
    for baseline in ("dense growth", "Lifelong-MoE", "joint (upper bound)"):
        assert all(baseline in n for s, n in names.items() if s not in cl_suite.ONLY)
    assert "frozen backbone" not in names["text_domains"]  # the LM would have nothing to train
    for stream, only in cl_suite.ONLY.items():  # a few methods, each one the stream can run
        assert names[stream] == only and aware in only


def test_the_user_text_files_stream_reads_the_folders_it_names():
    overrides = cl_suite.stream_overrides("text_files")
    assert overrides[0] == "stream.kind=text_files"
    assert all(f"/{folder}" in overrides[1] for folder in cl_suite.USER_FOLDERS)
    assert cl_suite.stream_overrides("text_domains") == []


def test_every_method_runs_on_every_stream_config():
    """Each method's overrides load onto each stream's config (no typo reaches a long run)."""
    from lifelong.config import load_config

    for stream, (config, _, quick) in cl_suite.STREAMS.items():
        for method in cl_suite.methods_for(stream):
            overrides = cl_suite.method_overrides(stream, method.name)
            cfg = load_config(cl_suite.ROOT / "configs" / config, [*quick, *overrides])
            cl_suite.equalize_active_params(cfg, growths=4)


@pytest.mark.parametrize("stream", sorted(cl_suite.STREAMS))
def test_active_params_after_the_last_growth_are_equal_across_methods(stream, tmp_path):
    """The oracle is the report's own count (``active_params_per_token``) on each method's
    model, grown over the whole stream as a run grows it, not the sizing formulas. PEER in
    every block has a PEER layer where the others have an MLP: more, by design. The stem,
    where a method keeps one, is left out of the comparison."""
    from lifelong.experiment import build_model, build_stream_from_config
    from lifelong.training.report import active_params_per_token
    from lifelong.training.run_state import grow_like_checkpoint

    counts = {}
    for method in cl_suite.methods_for(stream):
        cfg = cl_suite.cell_config(stream, method.name, seed=0, quick=True, runs_dir=tmp_path)
        spec = build_stream_from_config(cfg)
        bm = spec.benchmark
        model = grow_like_checkpoint(
            build_model(cfg, spec),
            len(bm.train_stream),
            train_stream=bm.train_stream,
            test_stream=bm.test_stream,
        )
        # A stem (kept on Permuted Digits by the methods that validate better with it) is
        # in front of every method's FFN alike: what is compared is the rest.
        stem = sum(p.numel() for n, p in model.named_parameters() if n.startswith("stem."))
        counts[method.name] = active_params_per_token(model) - stem
    # The reference: PEER's own layer (the streams that run a few methods have no replay row).
    peer = counts.get("PEER + growth + replay") or counts["PEER + growth, task label at test"]
    assert cl_suite.peer_growths(stream, True) == len(bm.train_stream) - 1
    for method, count in counts.items():
        if method.startswith("PEER + growth in every block"):
            assert count > peer
            continue
        if method.startswith("PEER + growth in both blocks"):  # 4 heads each: fewer, by design
            assert count < peer
            continue
        # Rounding a width to whole units: within one unit of 2·dim weights per expert slot.
        assert abs(count - peer) / peer < 0.01, (method, count, peer)


def test_verdicts_say_where_peer_wins_and_loses():
    def record(stream, method, value, std=0.01):
        return {"stream": stream, "method": method, "average_accuracy": [value, std]}

    stream = "split_digits_class_il"
    rows = [
        record(stream, "joint (upper bound)", 0.99),  # not a baseline to beat: sees it all
        record(stream, "dense replay", 0.90),
        record(stream, "dense naive", 0.20),
        record(stream, "PEER + growth, no task label", 0.50),
        record(stream, "PEER + growth + replay", 0.85),
    ]
    text = "\n".join(cl_suite.verdicts(rows))
    assert "PEER loses: the best of its rows, PEER + growth + replay, has accuracy 0.850" in text
    assert "best baseline, dense replay (0.050 worse)" in text
    rows[-1] = record(stream, "PEER + growth + replay", 0.905)
    text = "\n".join(cl_suite.verdicts(rows))
    assert "PEER wins (within one std over seeds)" in text


def test_shards_split_the_cells_between_machines():
    import argparse

    assert cl_suite.shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "x", "1/0"):
        with pytest.raises(argparse.ArgumentTypeError):
            cl_suite.shard(bad)


def test_main_runs_only_its_shard_of_the_cells(monkeypatch, tmp_path):
    ran = []
    monkeypatch.setattr(
        cl_suite, "run_cell", lambda stream, method, *a: ran.append((stream, method))
    )
    monkeypatch.setattr(cl_suite, "summarize", lambda stream, method, runs: {})
    monkeypatch.setattr(cl_suite, "merged", lambda records, earlier: [])
    monkeypatch.setattr(cl_suite, "markdown", lambda *a: "")
    streams = ["split_digits_class_il", "text_files"]
    cells = [(s, m.name) for s in streams for m in cl_suite.methods_for(s)]
    seen = []
    for i in range(3):
        ran.clear()
        args = ["--shard", f"{i}/3", "--seeds", "1", "--streams", *streams]
        cl_suite.main([*args, "--results", str(tmp_path / "r.md")])
        assert ran == cells[i::3]
        seen += ran
    assert sorted(seen) == sorted(cells)  # every cell exactly once over the three machines


def test_jobs_run_cells_in_parallel_workers_in_order(monkeypatch):
    import os
    import sys

    monkeypatch.setitem(sys.modules, "cl_suite", cl_suite)  # workers unpickle by module name
    monkeypatch.setattr(cl_suite, "run_cell", lambda *task: {"task": task[:3], "pid": os.getpid()})
    tasks = [("s", "m", seed, True, "/tmp") for seed in range(6)]
    serial = cl_suite.run_tasks(tasks, jobs=1)
    parallel = cl_suite.run_tasks(tasks, jobs=2)
    assert [r["task"] for r in parallel] == [r["task"] for r in serial]  # same order
    assert {r["pid"] for r in serial} == {os.getpid()}
    assert os.getpid() not in {r["pid"] for r in parallel}  # run in worker processes

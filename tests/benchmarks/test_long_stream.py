"""The long-stream benchmark's machinery on 3 tiny experiences: its JSON schema, and its byte
accounting (distinct storages) against a plain count over the model and the optimizer."""

import importlib.util
import json
from pathlib import Path

import pytest
from torch import Tensor

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "long_stream.py"
spec = importlib.util.spec_from_file_location("long_stream", PATH)
long_stream = importlib.util.module_from_spec(spec)
spec.loader.exec_module(long_stream)

TINY = [
    "stream.n_experiences=3",
    "stream.test_fraction=0.9",  # ~180 training samples per experience
    "model.dim=16",
    "model.peer.num_experts=16",
    "model.peer.heads=2",
    "model.peer.topk=2",
    "model.peer.grow_size=2",
]
RECORD_KEYS = {
    "experience",
    "stages",
    "experts",
    "params",
    "trainable_params",
    "param_bytes",
    "trainable_param_bytes",
    "buffer_bytes",
    "optimizer_bytes",
    "frozen_optimizer_bytes",
    "total_bytes",
    "live_tensor_bytes",
    "rss_bytes",
    "iterations",
    "step_s",
}


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.fixture(scope="module")
def tiny_run():
    from lifelong.config import load_config

    cfg = load_config(long_stream.CONFIG, TINY)
    return long_stream.run_stream(cfg)


def test_records_follow_the_stream_and_the_growth(tiny_run):
    records, model, _ = tiny_run
    assert [r["experience"] for r in records] == [1, 2, 3]
    for r in records:
        assert set(r) == RECORD_KEYS
        assert r["iterations"] > 0 and r["step_s"] > 0
    peer = model.ffn.layer
    assert [r["stages"] for r in records] == [1, 2, 3] and peer.num_stages == 3
    assert [r["experts"] for r in records] == [16, 36, 64]  # (4 + 2·s)² experts
    assert records[-1]["params"] == sum(p.numel() for p in model.parameters())


def test_bytes_match_a_plain_count(tiny_run):
    records, model, optimizer = tiny_run
    last = records[-1]
    # Stage parameters are views into one table per projection: counted per storage, the
    # table must be exactly as large as its stage parameters.
    assert last["param_bytes"] == nbytes(model.parameters())
    assert last["buffer_bytes"] == nbytes(model.buffers())
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert last["trainable_param_bytes"] == nbytes(trainable)
    state = [v for p, s in optimizer.state.items() for v in s.values() if isinstance(v, Tensor)]
    assert last["optimizer_bytes"] == nbytes(state)
    # LazyAdamW keeps state for trainable parameters only, at most two moments and a step
    assert all(p.requires_grad for p, s in optimizer.state.items() if s)
    assert last["frozen_optimizer_bytes"] == 0
    assert last["optimizer_bytes"] <= 2 * last["trainable_param_bytes"] + 4 * len(trainable)
    parts = ("param_bytes", "buffer_bytes", "optimizer_bytes", "frozen_optimizer_bytes")
    assert all(r["total_bytes"] == sum(r[k] for k in parts) for r in records)


def test_summary_compares_the_ends_of_the_stream(tiny_run):
    records, model, _ = tiny_run
    summary = long_stream.summarize(records)
    first, last = records[0], records[-1]
    assert summary["experiences"] == 3 and summary["stages"] == 3
    assert summary["step_ratio"] == pytest.approx(last["step_s"] / first["step_s"])
    assert summary["memory_growth_bytes"] == last["total_bytes"] - first["total_bytes"]
    grown = last["param_bytes"] - first["param_bytes"]
    trained = last["trainable_param_bytes"] - first["trainable_param_bytes"]
    assert summary["expected_growth_bytes"] == grown + 2 * trained
    assert summary["memory_ratio"] == pytest.approx(1.0, abs=0.1)
    # The rest is accounted for: the buffers grow by the router mass (one float per new
    # expert) and the list of trained experiences (one int64 each); the optimizer by the
    # two moments of the trainable parameters, give or take a 4-byte step per parameter.
    by_kind = summary["growth_bytes_by_kind"]
    assert by_kind["buffer_bytes"] == 4 * (last["experts"] - first["experts"]) + 8 * 2
    assert abs(by_kind["optimizer_bytes"] - 2 * trained) <= 4 * len(list(model.parameters()))
    assert summary["max_frozen_optimizer_bytes"] == 0
    assert isinstance(summary["step_pass"], bool) and isinstance(summary["memory_pass"], bool)


def test_main_writes_the_json_it_prints(tmp_path, capsys):
    out = tmp_path / "long.json"
    assert long_stream.main([*TINY, "--experiences", "2", "--no-eval", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written == json.loads(capsys.readouterr().out)
    assert set(written) == {
        "config",
        "overrides",
        "torch_threads",
        "wall_s",
        "summary",
        "experiences",
    }
    assert len(written["experiences"]) == 2 and set(written["experiences"][0]) == RECORD_KEYS

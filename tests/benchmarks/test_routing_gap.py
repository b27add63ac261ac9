"""benchmarks/routing_gap.py: the summary against hand-computed figures, and one tiny seed
end to end against the runs' own files."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("routing_gap", ROOT / "benchmarks/routing_gap.py")
routing_gap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(routing_gap)


def replay_records(family: str, per_epochs: dict[int, tuple[float, ...]]) -> list[dict]:
    """{epochs: (perplexity at seed 0, seed 1, ...)} -> run_task's records of one replay."""
    return [
        {"key": f"{family}_{e}ep", "seed": s, "perplexity": p, "just_trained": p + 1}
        for e, ps in per_epochs.items()
        for s, p in enumerate(ps)
    ]


def test_summary_means_stds_best_replay_and_ratios():
    records = [
        {"key": "peer", "seed": 1, "inferred": 22.0, "oracle": 20.0, "posterior": 19.0}
        | {"just_trained": 21.0},
        {"key": "peer", "seed": 0, "inferred": 20.0, "oracle": 18.0, "posterior": 17.0}
        | {"just_trained": 15.0},
        *replay_records("replay", {1: (30.0, 34.0), 2: (19.0, 21.0), 4: (25.0, 25.0)}),
        *replay_records("replay_equal", {1: (23.0, 25.0), 2: (30.0, 30.0), 4: (40.0, 20.0)}),
    ]
    out = routing_gap.summarize(records)
    assert out["seeds"] == [0, 1]
    assert out["per_seed"]["peer_inferred"] == [20.0, 22.0]  # ordered by seed
    assert out["mean_std"]["peer_oracle"] == [19.0, 1.0]  # population std of 18, 20
    assert out["mean_std"]["peer_just_trained"] == [18.0, 3.0]
    assert out["per_seed"]["replay_equal_4ep_just_trained"] == [41.0, 21.0]
    assert out["replay_best"] == "replay_2ep"  # means 32, 20, 25
    assert out["ratio_to_replay_best"] == {"inferred": 21 / 20, "oracle": 19 / 20, "posterior": 0.9}
    assert out["replay_equal_best"] == "replay_equal_1ep"  # means 24, 30, 30
    assert out["ratio_to_replay_equal_best"] == {
        "inferred": 21 / 24,
        "oracle": 19 / 24,
        "posterior": 18 / 24,
    }


def test_one_tiny_seed_matches_the_runs_files(tmp_path):
    tiny = ["stream.train_sequences=32", "stream.test_sequences=8", "stream.seq_len=32"]
    out_json = tmp_path / "gap.json"
    args = ["--seeds", "0", "--quick", "--runs-dir", str(tmp_path), "--json", str(out_json)]
    assert routing_gap.main([*args, *tiny]) == 0
    out = json.loads(out_json.read_text())
    peer = tmp_path / "peer-0"
    metrics = json.loads((peer / "metrics.json").read_text())
    assert out["per_seed"]["peer_inferred"] == [metrics["perplexity"]]
    diagonal = [row[j] for j, row in enumerate(metrics["perplexity_matrix"])]
    geometric = math.prod(diagonal) ** (1 / len(diagonal))
    assert out["per_seed"]["peer_just_trained"] == [pytest.approx(geometric)]
    for routing in ("oracle", "posterior"):
        scored = json.loads((peer / f"eval_routing-{routing}.json").read_text())
        assert out["per_seed"][f"peer_{routing}"] == [pytest.approx(scored["average"])]
    for epochs in (1, 2, 4):
        replay = json.loads((tmp_path / f"replay_{epochs}ep-0" / "metrics.json").read_text())
        assert out["per_seed"][f"replay_{epochs}ep"] == [replay["perplexity"]]
        assert replay["params"]["active_per_token"] >= metrics["params"]["active_per_token"]
        equal = json.loads((tmp_path / f"replay_equal_{epochs}ep-0" / "metrics.json").read_text())
        assert out["per_seed"][f"replay_equal_{epochs}ep"] == [equal["perplexity"]]
        # A dense FFN in each of PEER's blocks, at PEER's active parameters per token.
        assert equal["params"]["active_per_token"] == metrics["params"]["active_per_token"]

"""benchmarks/dist_scaling.py at toy size: 2 gloo ranks really exchange bytes, the sharded
layer holds about half the experts, and the projection follows its stated formulas."""

import importlib.util
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("dist_scaling", ROOT / "benchmarks/dist_scaling.py")
dist_scaling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dist_scaling)

TOY = [
    "--sizes",
    "8",
    "--dim",
    "16",
    "--key-dim",
    "16",
    "--heads",
    "2",
    "--topk",
    "4",
    "--tokens",
    "64",
    "--steps",
    "1",
]


def test_two_ranks_exchange_and_sharding_halves_the_experts(tmp_path):
    out = tmp_path / "ds.json"
    # A subprocess, as a user runs it: its 2 ranks are spawned from the script's module.
    script = ROOT / "benchmarks/dist_scaling.py"
    subprocess.run([sys.executable, str(script), *TOY, "--json", str(out)], check=True)
    result = json.loads(out.read_text())
    by_mode = {(r["mode"], r["world"]): r for r in result["steps"]}
    single, ddp, sharded = by_mode["single", 1], by_mode["ddp", 2], by_mode["sharded", 2]
    assert single["bytes_sent_per_step"] == 0
    assert ddp["bytes_sent_per_step"] > 0 and sharded["bytes_sent_per_step"] > 0
    expert = 2 * 64 * 16 * 4
    assert ddp["expert_bytes"] == sharded["expert_bytes"] == expert
    # Tables plus LazyAdamW moments: the sharded rank holds half the expert part.
    saved = ddp["held_bytes"] - sharded["held_bytes"]
    assert saved == pytest.approx(1.5 * expert, rel=0.05)
    (unique,) = result["unique_rows"]
    assert 0 < unique["unique_rows"] <= min(64, unique["retrievals"])


def test_projection_formulas():
    args = Namespace(tokens=10, heads=2, topk=5, dim=4)
    unique = [dict(num_experts=100, retrievals=100, unique_rows=25)]
    rows = dist_scaling.project(unique, args)
    row = next(
        r
        for r in rows
        if r["world"] == 8 and r["unique_rows"] == "measured" and r["num_experts"] == 16 * 2**20
    )
    u = 100 * 0.25  # retrievals per rank x measured distinct fraction
    row_bytes = 2 * 4 * 4
    assert row["sharded_bytes"] == int(u * 7 / 8 * (8 + 2 * row_bytes))
    assert row["ddp_sparse_bytes"] == int(7 * u * (8 + row_bytes))
    assert row["ddp_dense_bytes"] == 2 * 7 * (16 * 2**20 * row_bytes) // 8
    assert row["expert_bytes_per_rank_sharded"] == 16 * 2**20 * row_bytes // 8

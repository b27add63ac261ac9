"""Sharded-run checkpoint files: a rank's rows are the global rows i = rank (mod W) of each
table, and unsharding puts every row back where one process has it."""

import pytest
import torch

from lifelong.training.checkpoint import CheckpointError
from lifelong.training.shards import prune_shards, save_shard, shard_path, unshard, with_shard


def rows_of_rank(full_stages, rank, world):
    """Oracle: walk the global row ids and keep those the rank owns, stage by stage."""
    out, row = {}, 0
    for s, chunk in enumerate(full_stages):
        kept = []
        for j in range(chunk.shape[0]):
            if (row + j) % world == rank:
                kept.append(chunk[j])
        out[f"ffn.layer.down.{s}"] = torch.stack(kept) if kept else chunk[:0]
        row += chunk.shape[0]
    return out


@pytest.mark.parametrize("world", [1, 2, 3])
def test_unshard_restores_every_stage(world):
    stages = [torch.randn(4, 3), torch.randn(5, 3), torch.randn(7, 3)]
    shards = [rows_of_rank(stages, r, world) for r in range(world)]
    full = unshard(shards)
    for s, chunk in enumerate(stages):
        assert torch.equal(full[f"ffn.layer.down.{s}"], chunk)


def state(finished, world, rows):
    return {
        "finished": finished,
        "world": world,
        "model": {"a.down.0": rows, "a.query.weight": torch.ones(2)},
        "optimizer": {"state": {"a.down.0": {"exp_avg": rows * 0}}, "groups": [], "group_of": {}},
    }


def test_a_rank_resumes_with_its_own_rows_and_refuses_another_world(tmp_path):
    mine = torch.full((3, 2), 7.0)
    shard = {"finished": 2, "model": {"a.down.0": mine}, "optimizer": {}}
    save_shard(tmp_path, 1, shard)
    merged = with_shard(state(2, 2, torch.zeros(4, 2)), tmp_path, rank=1, world=2, sharded=True)
    assert torch.equal(merged["model"]["a.down.0"], mine)
    assert "a.down.0" not in merged["optimizer"]["state"]  # rank 0's state is not rank 1's
    assert torch.equal(merged["model"]["a.query.weight"], torch.ones(2))
    with pytest.raises(CheckpointError, match="nproc_per_node=2"):
        with_shard(state(2, 2, torch.zeros(4, 2)), tmp_path, rank=0, world=3, sharded=True)
    with pytest.raises(CheckpointError, match="does not exist"):  # experience 3: never saved
        with_shard(state(3, 2, torch.zeros(4, 2)), tmp_path, rank=1, world=2, sharded=True)
    with pytest.raises(CheckpointError, match="resume it with dist.shard_experts=true"):
        with_shard(state(2, 2, torch.zeros(4, 2)), tmp_path, rank=1, world=2, sharded=False)
    unsharded = state(2, 2, torch.zeros(4, 2))
    del unsharded["world"]
    assert with_shard(unsharded, tmp_path, rank=0, world=1, sharded=False) is unsharded
    with pytest.raises(CheckpointError, match="resume it with dist.shard_experts=false"):
        with_shard(unsharded, tmp_path, rank=1, world=2, sharded=True)


def test_prune_keeps_the_committed_experience_and_later(tmp_path):
    for k in (1, 2, 3):
        save_shard(tmp_path, 1, {"finished": k, "model": {}, "optimizer": {}})
    prune_shards(tmp_path, 1, 2)
    assert [shard_path(tmp_path, 1, k).exists() for k in (1, 2, 3)] == [False, True, True]

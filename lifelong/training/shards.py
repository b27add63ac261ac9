"""Checkpoints of a run whose expert tables are sharded over the ranks (``dist.shard_experts``).

Every rank holds other rows of each ``ShardedPEER`` table, with their optimizer state, so
rank 0's ``checkpoint.pt`` cannot hold the run alone. After experience k every rank r > 0
writes its shard, its rows and their optimizer state, to ``shards/rank<r>.exp<k>.pt``;
then rank 0 commits ``checkpoint.pt`` (its own shard inside), and only then are older
shard files removed. A kill at any moment therefore leaves, for the experience that
``checkpoint.pt`` names, every rank's shard on disk.

``unshard`` turns the ranks' shards back into the tables of one process (``lifelong
eval``, or a run resumed without torchrun).
"""

from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..layers.sharded_peer import sharded_parameters
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint

SHARDS = "shards"


def shard_names(model: nn.Module) -> list[str]:
    """The parameters that hold only this rank's rows, in stage order."""
    return list(sharded_parameters(model))


def shard_path(run_dir: Path, rank: int, finished: int) -> Path:
    return Path(run_dir) / SHARDS / f"rank{rank}.exp{finished}.pt"


def shard_of(state: dict, names: list[str]) -> dict:
    """The part of a checkpoint state (``run_state.capture``) that is this rank's alone."""
    optimizer = state["optimizer"]["state"]
    return {
        "finished": state["finished"],
        "model": {n: state["model"][n] for n in names},
        "optimizer": {n: optimizer[n] for n in names if n in optimizer},
    }


def save_shard(run_dir: Path, rank: int, shard: dict) -> None:
    path = shard_path(run_dir, rank, int(shard["finished"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, shard)


def with_shard(state: dict, run_dir: Path, *, rank: int, world: int, sharded: bool) -> dict:
    """The checkpoint state this rank resumes from: rank 0's, with this rank's shard in
    place of rank 0's rows when the run shards its experts (``sharded``: the model built
    for resuming does). A checkpoint of the other layout is refused, naming the fix."""
    if "world" not in state:
        if sharded:
            raise CheckpointError(
                f"'{run_dir}' was trained without sharded experts; resume it with "
                "dist.shard_experts=false"
            )
        return state
    saved_world = int(state["world"])
    if saved_world != world:
        raise CheckpointError(
            f"'{run_dir}' shards its experts over {saved_world} ranks; resume it with "
            f"torchrun --nproc_per_node={saved_world} (this is {world})"
        )
    if not sharded:
        raise CheckpointError(
            f"'{run_dir}' was trained with sharded experts; resume it with dist.shard_experts=true"
        )
    if rank == 0:
        return state
    shard = load_checkpoint(shard_path(run_dir, rank, int(state["finished"])))
    optimizer = {**state["optimizer"], "state": {**state["optimizer"]["state"]}}
    for name in shard["model"]:
        optimizer["state"].pop(name, None)  # rank 0's rows' state: not this rank's
    optimizer["state"].update(shard["optimizer"])
    return {**state, "model": {**state["model"], **shard["model"]}, "optimizer": optimizer}


def save_sharded(run_dir: Path, state: dict, names: list[str], save_main) -> None:
    """Every rank: its shard file (ranks > 0), then ``save_main(state)`` on rank 0 (the
    state marked with the world size), then the older shard files go. ``state``: this
    rank's ``run_state.capture``; ``names``: ``shard_names`` of its model."""
    rank, world = dist.get_rank(), dist.get_world_size()
    if rank:
        save_shard(run_dir, rank, shard_of(state, names))
    dist.barrier()  # every shard of this experience is on disk before checkpoint.pt names it
    if rank == 0:
        save_main({**state, "world": world})
    dist.barrier()
    prune_shards(run_dir, rank, int(state["finished"]))


def one_process_state(state: dict, run_dir: Path) -> dict:
    """A sharded run's checkpoint state with whole tables, for one process (``lifelong
    eval``): rank 0's rows from ``checkpoint.pt``, the others' from their shard files."""
    world, finished = int(state.get("world", 1)), int(state["finished"])
    if world == 1:
        return state
    others = [load_checkpoint(shard_path(run_dir, r, finished))["model"] for r in range(1, world)]
    mine = {name: state["model"][name] for name in others[0]}
    return {**state, "model": {**state["model"], **unshard([mine, *others])}}


def prune_shards(run_dir: Path, rank: int, finished: int) -> None:
    """Remove this rank's shard files older than experience ``finished`` (committed)."""
    for path in (Path(run_dir) / SHARDS).glob(f"rank{rank}.exp*.pt"):
        if int(path.stem.rsplit("exp", 1)[1]) < finished:
            path.unlink(missing_ok=True)


def unshard(shards: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The one-process tables from every rank's ``{name: rows}`` (``shards[r]``: rank r's,
    names "<layer>.<table>.<stage>"). Rank r holds the global rows i = r (mod W) of each
    table, so stage s, which starts at row b, holds them at offsets (r - b) mod W."""
    world = len(shards)
    out = {}
    tables = {}
    for name in shards[0]:
        table, stage = name.rsplit(".", 1)
        tables.setdefault(table, []).append(int(stage))
    for table, stages in tables.items():
        first = 0  # global row where the stage starts
        for s in sorted(stages):
            name = f"{table}.{s}"
            parts = [shards[r][name] for r in range(world)]
            rows = sum(p.shape[0] for p in parts)
            full = parts[0].new_empty(rows, *parts[0].shape[1:])
            for r, part in enumerate(parts):
                full[(r - first) % world :: world] = part
            out[name] = full
            first += rows
    return out

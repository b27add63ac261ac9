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
from torch import nn

from ..layers.sharded_peer import ShardedPEER
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint

SHARDS = "shards"


def shard_names(model: nn.Module) -> list[str]:
    """The parameters that hold only this rank's rows: every stage of every sharded table,
    in stage order."""
    names = []
    for prefix, module in model.named_modules():
        if isinstance(module, ShardedPEER):
            for table in module.TABLES:
                stages = len(getattr(module, table))
                names += [f"{prefix}.{table}.{s}".lstrip(".") for s in range(stages)]
    return names


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


def with_shard(state: dict, run_dir: Path, rank: int, world: int) -> dict:
    """Rank 0's checkpoint state with this rank's shard in place of rank 0's."""
    saved_world = int(state.get("world", 1))
    if saved_world != world:
        raise CheckpointError(
            f"'{run_dir}' shards its experts over {saved_world} ranks; resume it with "
            f"torchrun --nproc_per_node={saved_world} (this is {world})"
        )
    if rank == 0:
        return state
    shard = load_checkpoint(shard_path(run_dir, rank, int(state["finished"])))
    optimizer = {**state["optimizer"], "state": {**state["optimizer"]["state"]}}
    for name in shard["model"]:
        optimizer["state"].pop(name, None)  # rank 0's rows' state: not this rank's
    optimizer["state"].update(shard["optimizer"])
    return {**state, "model": {**state["model"], **shard["model"]}, "optimizer": optimizer}


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

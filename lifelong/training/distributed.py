"""Data-parallel runs launched by torchrun: the process group, which rank writes, what rank
0 decides for every rank, and what a data-parallel run refuses.

``torchrun --nproc_per_node=N -m lifelong run CONFIG ...`` starts N processes with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment;
each runs the same command line. Here they join one ``torch.distributed`` process group
(gloo on the CPU, NCCL on CUDA), which Avalanche's ``DistributedHelper`` then sees; the
training itself is ``lifelong.parallel.DataParallelPlugin``. Rank 0 alone holds the run
lock and writes the run directory; the others train and evaluate alongside.

The group is created with ``torch.distributed.init_process_group`` rather than
``DistributedHelper.init_distributed``, which takes no timeout: with one, a rank that
hangs stops the others after ``dist.timeout_s`` instead of gloo's default 30 minutes (a
rank that dies is noticed at once: its sockets close).
"""

import contextlib
import datetime
import hashlib
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from avalanche.distributed import DistributedHelper

from ..config import ConfigError
from ..experiment import resolve_device
from .errors import RankLostError

# Set to a folder, every rank appends the digest of its model and optimizer state after
# each experience to <folder>/rank<r>.jsonl (tests check that the ranks stay identical).
STATE_DIGESTS = "LIFELONG_STATE_DIGESTS"

# Layers whose routing reads the whole batch (capacity per batch, experts choosing tokens,
# a batch-wide load-balancing loss): a slice per rank would route otherwise.
BATCH_WIDE_LAYERS = ("moe", "expert_choice")


def launched_ranks() -> int:
    """How many processes torchrun started for this run (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_rank() -> int:
    """This process's rank among them (0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def backend_for(cfg) -> str:
    device = resolve_device(cfg.device)
    backend = cfg.dist.backend
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError(
            f"dist.backend=nccl needs CUDA devices and this run is on {device.type}; use "
            "dist.backend=gloo or auto"
        )
    return backend


@contextlib.contextmanager
def process_group(cfg):
    """The run's process group while the block runs, when torchrun started more than one
    rank (else nothing: the single-process run is untouched). A rank that loses the
    others (one died, or did not answer within ``dist.timeout_s``) raises
    ``RankLostError``."""
    if launched_ranks() == 1 or dist.is_initialized():
        yield
        return
    backend = backend_for(cfg)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # "cuda" = this rank's
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=cfg.dist.timeout_s))
    try:
        yield
    except RuntimeError as err:
        if not _lost_contact(err):
            raise
        reason = str(err).split("] ", 1)[-1].split(". ")[0]
        raise RankLostError(
            f"lost the other ranks ({reason}): one stopped or did not answer within "
            f"dist.timeout_s={cfg.dist.timeout_s:g}; the last checkpoint is intact, rerun "
            "the same command with resume=true"
        ) from None
    finally:
        dist.destroy_process_group()


def _lost_contact(err: RuntimeError) -> bool:
    """Whether ``err`` is a collective failing because another rank is gone or silent."""
    text = str(err)
    return isinstance(err, dist.DistError) or "gloo" in text or "NCCL" in text


def is_writer() -> bool:
    """Whether this process writes the run directory: rank 0, or the only process."""
    return DistributedHelper.is_main_process


def decided_by_writer(decide):
    """``decide()`` run on rank 0 only, its result returned on every rank. When it raises
    a one-line error (a ``ValueError``) rank 0 reports it and the other ranks exit with
    the same status 2 without repeating it."""
    if not DistributedHelper.is_distributed:
        return decide()
    if is_writer():
        try:
            result = decide()
        except ValueError:
            DistributedHelper.broadcast_object(("refused", None))
            raise
        DistributedHelper.broadcast_object(("decided", result))
        return result
    verdict, result = DistributedHelper.broadcast_object(None)
    if verdict == "refused":
        raise SystemExit(2)
    return result


def check_data_parallel(cfg, exp, world: int) -> None:
    """Refuse, in one line, a run that ``world`` ranks would change or cannot split
    (``exp``: the run as ``build_experiment`` built it)."""
    t = cfg.train
    if t.batch_size % world:
        raise ConfigError(
            f"train.batch_size={t.batch_size} (the global batch) does not split over "
            f"{world} ranks; choose a multiple of {world}"
        )
    if cfg.model.ffn in BATCH_WIDE_LAYERS:
        raise ConfigError(
            f"model.ffn={cfg.model.ffn} routes with statistics of the whole batch, which "
            f"{world} ranks holding a slice each would change; under torchrun use peer, "
            "pkm or dense"
        )
    for plugin in exp.strategy.plugins:
        if not getattr(plugin, "supports_distributed", False):
            raise ConfigError(
                f"train.strategy={t.strategy}: {type(plugin).__name__} does not support "
                "distributed training (Avalanche's supports_distributed); under torchrun use "
                "train.strategy=naive or replay with train.regularizer=ewc, si or distill"
            )
    if t.strategy == "joint":
        return  # one task-balanced pass over the union: its last batch is checked as it comes
    for experience in exp.spec.benchmark.train_stream:
        last = len(experience.dataset) % t.batch_size
        if 0 < last < world:
            raise ConfigError(
                f"training experience {experience.current_experience} ends with a batch of "
                f"{last} rows, fewer than the {world} ranks; change train.batch_size or the "
                "number of ranks"
            )


def record_state_digest(strategy, finished: int) -> None:
    """With ``LIFELONG_STATE_DIGESTS`` set, append this rank's state digest after
    ``finished`` experiences to ``<folder>/rank<r>.jsonl``."""
    folder = os.environ.get(STATE_DIGESTS)
    if not folder:
        return
    from .run_state import optimizer_state

    digest = hashlib.sha256()
    _digest(digest, strategy.model.state_dict())
    _digest(digest, optimizer_state(strategy.optimizer, strategy.model)["state"])
    line = json.dumps({"finished": finished, "digest": digest.hexdigest()})
    with open(Path(folder) / f"rank{DistributedHelper.rank}.jsonl", "a") as f:
        f.write(line + "\n")


def _digest(digest, value) -> None:
    """Feed ``value`` (tensors inside dicts, lists, numbers) to ``digest``, keys sorted."""
    if torch.is_tensor(value):
        t = value.detach().cpu()
        t = t.to_dense() if t.is_sparse else t
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(str(key).encode())
            _digest(digest, value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            _digest(digest, item)
    else:
        digest.update(repr(value).encode())

"""One continual-learning run: config -> experiment -> train and evaluate -> report.

After every training experience the whole test stream is evaluated, so the accuracy (or
perplexity) matrix ``R[trained_through][evaluated_on]`` is complete (docs/design.md §5),
and the run's state is saved to ``checkpoint.pt`` (``run_state.capture``): a run killed at
any moment continues with ``resume=true`` from its last finished experience and ends with
the metrics.json an uninterrupted run would have written.

Under torchrun every rank runs this loop (``distributed``): rank 0 alone holds the lock,
decides whether and from where the run starts, and writes the run directory; every rank
trains its slice of each batch and evaluates the whole test stream.
"""

import contextlib
import json
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..atomic import atomic_write_text
from ..experiment import build_experiment
from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from .console import LOG, on_terminal
from .distributed import (
    check_data_parallel,
    decided_by_writer,
    is_writer,
    launched_rank,
    launched_ranks,
    process_group,
    record_state_digest,
)
from .errors import RunError
from .identity import (
    check_fingerprint,
    computed_config,
    fingerprint,
    first_difference,
    schema_defaults,
)
from .report import report_complete, write_report
from .run_lock import run_lock
from .run_state import capture, restore
from .shards import save_sharded, shard_names, with_shard
from .tb_logger import ExperienceStepLogger

RUN_INFO = "run.json"  # wall time and sessions: kept out of metrics.json, which is deterministic


def existing_run(cfg: DictConfig) -> tuple[Path, dict | None]:
    """The run directory and, when resuming, its checkpoint (None: start from scratch).
    Reads only: a run that must not start is refused before anything is written."""
    run_dir = Path(cfg.runs_dir) / cfg.name
    if not (run_dir.exists() and any(run_dir.iterdir())):
        return run_dir, None
    if not cfg.resume:
        raise RunError(
            f"run directory '{run_dir}' already exists; pass resume=true to continue it or "
            f"choose another name=... (nothing was overwritten)"
        )
    saved_config = run_dir / "config.yaml"
    if not saved_config.is_file():
        if all(p.name.startswith(".") for p in run_dir.iterdir()):
            return run_dir, None  # killed while writing its config: only temporary files
        raise RunError(f"resume=true: '{run_dir}' holds no config.yaml, so it is not a run")
    saved = OmegaConf.load(saved_config)
    if not isinstance(saved, DictConfig) or "seed" not in saved:
        raise RunError(
            f"resume=true: '{saved_config}' is empty or not a run config; the run cannot be "
            f"checked, so start it again under another name=... (nothing was changed)"
        )
    # Resuming under another config would splice two experiments into one result.
    # How a run reports itself, and where its directory sits, may change (NOT_COMPUTED).
    diff = first_difference(computed_config(saved), computed_config(cfg), schema_defaults())
    if diff:
        raise RunError(
            f"resume=true: the config differs from the run's at {diff}; "
            f"resume with the run's config.yaml"
        )
    path = run_dir / CHECKPOINT
    if not path.is_file():
        return run_dir, None
    state = load_checkpoint(path)
    check_fingerprint(state, cfg, path)  # a checkpoint copied in from another run
    return run_dir, state


def run(cfg: DictConfig) -> Path:
    """Run the experiment described by ``cfg``; returns the run directory. With
    ``cfg.resume`` an interrupted run continues from its last finished experience."""
    with process_group(cfg), contextlib.ExitStack() as held:

        def claim():  # rank 0 only: the lock, then what the run directory holds
            held.enter_context(run_lock(Path(cfg.runs_dir), str(cfg.name)))
            return existing_run(cfg)

        run_dir, checkpoint = decided_by_writer(claim)
        return _locked_run(cfg, run_dir, checkpoint)


def _locked_run(cfg: DictConfig, run_dir: Path, checkpoint: dict | None) -> Path:
    from avalanche.logging import InteractiveLogger

    start = time.time()
    writer = is_writer()
    finished = int(checkpoint["finished"]) if checkpoint else 0
    # Progress bars redraw their line with carriage returns: only on a terminal. Avalanche
    # allows loggers on rank 0 only.
    loggers = [InteractiveLogger()] if cfg.log.progress and on_terminal() and writer else []
    tb = None
    if cfg.log.tensorboard and writer:
        # Every point at x = finished experiences; a resumed run hides what its killed
        # predecessor logged after the checkpoint (x > finished).
        tb = ExperienceStepLogger(
            run_dir,
            step_source=lambda: exp.strategy.clock.train_exp_counter,
            purge_step=(finished + 1 if checkpoint else 0) if cfg.resume else None,
        )
        loggers.insert(0, tb)
    ranks = launched_ranks()
    exp = build_experiment(cfg, loggers=loggers, data_parallel=ranks > 1)
    if ranks > 1:
        check_data_parallel(cfg, exp, ranks)  # the same verdict on every rank, before writing
    total = 1 if cfg.train.strategy == "joint" else len(exp.spec.benchmark.train_stream)
    if finished == total:
        if not writer:
            return run_dir  # nothing to train; rank 0 checks (or rebuilds) the report
        if report_complete(run_dir):
            LOG.info(f"'{run_dir}' already finished: nothing to do")
            return run_dir  # resume=true on a finished run
        LOG.info(f"'{run_dir}' finished, but its report is incomplete: rebuilding it")
    fresh = writer and not run_dir.exists()  # this call creates the directory
    try:
        return _train_and_report(cfg, exp, run_dir, checkpoint, tb, start)
    except BaseException:
        if fresh and not (run_dir / CHECKPOINT).exists():
            # Nothing finished (no checkpoint): leave nothing that blocks a retry.
            if tb is not None:
                tb.close()
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _train_and_report(cfg, exp, run_dir: Path, checkpoint, tb, start: float) -> Path:
    joint = cfg.train.strategy == "joint"
    train_stream, test_stream = exp.spec.benchmark.train_stream, exp.spec.benchmark.test_stream
    finished = int(checkpoint["finished"]) if checkpoint else 0
    writer = is_writer()
    if checkpoint is None and writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    strategy = exp.strategy
    earlier_wall_s = 0.0
    if checkpoint:  # first: a checkpoint that does not fit leaves no events file behind
        # Sharded experts: this rank's rows are in its shard file.
        checkpoint = with_shard(
            checkpoint,
            run_dir,
            rank=launched_rank(),
            world=launched_ranks(),
            sharded=bool(shard_names(strategy.model)),
        )
        restore(
            checkpoint,
            path=run_dir / CHECKPOINT,
            strategy=strategy,
            metrics=exp.metrics,
            train_stream=train_stream,
            test_stream=test_stream,
        )
        earlier_wall_s = float(checkpoint["wall_s"])
    if tb is not None:
        tb.open()  # the events file's name holds the time: it orders the run's sessions

    def save(done: int):
        record_state_digest(strategy, done)  # only with LIFELONG_STATE_DIGESTS set
        shards = shard_names(strategy.model)  # dist.shard_experts: every rank saves its rows
        if not (writer or shards):
            return
        wall_s = earlier_wall_s + time.time() - start
        state = capture(finished=done, strategy=strategy, metrics=exp.metrics, wall_s=wall_s)
        state["fingerprint"] = fingerprint(cfg)
        if shards:
            save_sharded(run_dir, state, shards, lambda s: save_checkpoint(run_dir / CHECKPOINT, s))
        else:
            save_checkpoint(run_dir / CHECKPOINT, state)

    if cfg.train.eval_initial and not joint and not checkpoint:
        strategy.eval(test_stream)  # the random-init row, for forward transfer
    if joint and finished == 0:
        LOG.info(f"joint training: all {len(train_stream)} experiences at once")
        strategy.train(train_stream)  # one row: the whole stream at once
        strategy.eval(test_stream)
        save(1)
    elif not joint:
        names = exp.spec.experience_names
        if finished:
            LOG.info(f"resuming after experience {finished}/{len(train_stream)}")
        for experience in list(train_stream)[finished:]:
            e = int(experience.current_experience)
            LOG.info(f"experience {e + 1}/{len(train_stream)}: {names[e]}")
            strategy.train(experience)
            strategy.eval(test_stream)
            save(int(experience.current_experience) + 1)

    if not writer:
        return run_dir  # rank 0 writes the report
    write_report(run_dir, cfg=cfg, exp=exp, writer=tb.writer if tb else None)
    info = {"wall_s": earlier_wall_s + time.time() - start, "resumed_from": None}
    if cfg.resume:
        info["resumed_from"] = finished
    # Last, and naming what the report wrote: its presence says the report is whole.
    info["report"] = sorted(["metrics.json", *(p.name for p in run_dir.glob("*.png"))])
    atomic_write_text(run_dir / RUN_INFO, json.dumps(info) + "\n")
    if tb is not None:
        tb.close()
    return run_dir

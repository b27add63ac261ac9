"""One continual-learning run: stream -> model -> Avalanche strategy -> evaluation -> report.

After every training experience the whole test stream is evaluated, so the accuracy (or
perplexity) matrix ``R[trained_through][evaluated_on]`` is complete (BRIEF §4), and the
run's state is saved to ``checkpoint.pt`` (``run_state.capture``): a run killed at any
moment continues with ``resume=true`` from its last finished experience and ends with the
metrics.json an uninterrupted run would have written.
"""

import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..builders import (
    LMCrossEntropy,
    build_model,
    build_regularization,
    build_strategy,
    build_stream_from_config,
    resolve_device,
)
from ..metrics import ExperienceMatrix, ExpertUsageMetric, MoEMetric
from ..optim import LazyAdamW
from .aux_loss import AuxLossPlugin
from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from .freeze import FreezeSharedPlugin
from .nan_guard import FiniteLossPlugin
from .report import write_report
from .run_state import capture, restore
from .tb_logger import ExperienceStepLogger


class RunError(ValueError):
    """A run that cannot start, phrased for the command line."""


RUN_INFO = "run.json"  # wall time and sessions: kept out of metrics.json, which is deterministic


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _first_difference(saved, given, prefix="") -> str | None:
    """Dotted path of the first key whose value differs between two plain dicts."""
    for key in sorted(set(saved) | set(given), key=str):
        a, b = saved.get(key), given.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key} (run has {a!r}, given {b!r})"
    return None


def prepare_run_dir(cfg: DictConfig) -> tuple[Path, dict | None]:
    """The run directory and, when resuming, its checkpoint (None: start from scratch)."""
    run_dir = Path(cfg.runs_dir) / cfg.name
    if not (run_dir.exists() and any(run_dir.iterdir())):
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        return run_dir, None
    if not cfg.resume:
        raise RunError(
            f"run directory '{run_dir}' already exists; pass resume=true to continue it or "
            f"choose another name=... (nothing was overwritten)"
        )
    saved_config = run_dir / "config.yaml"
    if not saved_config.is_file():
        raise RunError(f"resume=true: '{run_dir}' holds no config.yaml, so it is not a run")
    # Resuming under another config would splice two experiments into one result.
    ignore = {"resume", "log"}  # how a run reports itself may change, what it computes not
    saved = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(saved_config)).items()
             if k not in ignore}  # fmt: skip
    given = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
             if k not in ignore}  # fmt: skip
    diff = _first_difference(saved, given)
    if diff:
        raise RunError(f"resume=true: the config differs from the run's at {diff}; "
                       f"resume with the run's config.yaml")  # fmt: skip
    path = run_dir / CHECKPOINT
    return run_dir, (load_checkpoint(path) if path.is_file() else None)


def run(cfg: DictConfig) -> Path:
    """Run the experiment described by ``cfg``; returns the run directory. With
    ``cfg.resume`` an interrupted run continues from its last finished experience."""
    from avalanche.evaluation.metrics import loss_metrics
    from avalanche.logging import InteractiveLogger
    from avalanche.training.plugins import EvaluationPlugin

    start = time.time()
    seed_everything(cfg.seed)
    spec = build_stream_from_config(cfg)
    device = resolve_device(cfg.device)
    model = build_model(cfg, spec)
    run_dir, checkpoint = prepare_run_dir(cfg)
    finished = int(checkpoint["finished"]) if checkpoint else 0
    joint = cfg.train.strategy == "joint"
    total = 1 if joint else len(spec.benchmark.train_stream)
    if finished == total and (run_dir / "metrics.json").is_file():
        return run_dir  # resume=true on a finished run: nothing left to do

    lm = spec.task == "lm"
    criterion = LMCrossEntropy() if lm else torch.nn.CrossEntropyLoss()
    optimizer = LazyAdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    matrix = ExperienceMatrix("perplexity" if lm else "accuracy")
    usage = ExpertUsageMetric(model)
    moe = MoEMetric()
    strategy = None
    tb = None
    if cfg.log.tensorboard:
        # Every point at x = finished experiences; a resumed run hides what its killed
        # predecessor logged after the checkpoint (x > finished).
        tb = ExperienceStepLogger(
            run_dir,
            step_source=lambda: strategy.clock.train_exp_counter,
            purge_step=(finished + 1 if checkpoint else 0) if cfg.resume else None,
        )
    loggers = [lg for lg in (tb, InteractiveLogger() if cfg.log.progress else None) if lg]
    evaluator = EvaluationPlugin(
        matrix, usage, moe, loss_metrics(experience=True, stream=True), loggers=loggers
    )
    plugins = [
        FreezeSharedPlugin(list(cfg.model.freeze_after_first)),
        AuxLossPlugin(),
        *build_regularization(cfg),
        FiniteLossPlugin(),  # last: it checks the loss with every penalty added
    ]
    strategy = build_strategy(
        cfg,
        model=model,
        optimizer=optimizer,
        criterion=criterion,
        evaluator=evaluator,
        device=device,
        plugins=plugins,
    )
    metrics = {"matrix": matrix, "usage": usage, "moe": moe}
    train_stream, test_stream = spec.benchmark.train_stream, spec.benchmark.test_stream
    earlier_wall_s = 0.0
    if checkpoint:
        restore(checkpoint, strategy=strategy, metrics=metrics, train_stream=train_stream,
                test_stream=test_stream)  # fmt: skip
        earlier_wall_s = float(checkpoint["wall_s"])

    def save(done: int):
        state = capture(finished=done, strategy=strategy, metrics=metrics,
                        wall_s=earlier_wall_s + time.time() - start)  # fmt: skip
        save_checkpoint(run_dir / CHECKPOINT, state)

    if cfg.train.eval_initial and not joint and not checkpoint:
        strategy.eval(test_stream)  # the random-init row, for forward transfer
    if joint and finished == 0:
        strategy.train(train_stream)  # one row: the whole stream at once
        strategy.eval(test_stream)
        save(1)
    elif not joint:
        for experience in list(train_stream)[finished:]:
            strategy.train(experience)
            strategy.eval(test_stream)
            save(int(experience.current_experience) + 1)

    wall_s = earlier_wall_s + time.time() - start
    write_report(
        run_dir,
        cfg=cfg,
        spec=spec,
        matrix=matrix,
        usage=usage,
        model=model,
        writer=tb.writer if tb else None,
    )
    (run_dir / RUN_INFO).write_text(
        json.dumps({"wall_s": wall_s, "resumed_from": finished if cfg.resume else None}) + "\n"
    )
    if tb is not None:
        tb.writer.close()
    return run_dir

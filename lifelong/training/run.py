"""One continual-learning run: stream -> model -> Avalanche strategy -> evaluation -> report.

After every training experience the whole test stream is evaluated, so the accuracy (or
perplexity) matrix ``R[trained_through][evaluated_on]`` is complete (BRIEF §4).
"""

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
    resolve_device,
)
from ..data import build_stream
from ..metrics import ExperienceMatrix, ExpertUsageMetric, MoEMetric
from ..optim import LazyAdamW
from .aux_loss import AuxLossPlugin
from .freeze import FreezeSharedPlugin
from .report import write_report


class RunError(ValueError):
    """A run that cannot start, phrased for the command line."""


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_run_dir(cfg: DictConfig) -> Path:
    run_dir = Path(cfg.runs_dir) / cfg.name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunError(
            f"run directory '{run_dir}' already exists; choose another name=... "
            f"(nothing was overwritten)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run(cfg: DictConfig) -> Path:
    """Run the experiment described by ``cfg``; returns the run directory."""
    from avalanche.evaluation.metrics import loss_metrics
    from avalanche.logging import InteractiveLogger, TensorboardLogger
    from avalanche.training.plugins import EvaluationPlugin

    start = time.time()
    seed_everything(cfg.seed)
    stream_options = OmegaConf.to_container(cfg.stream, resolve=True)
    spec = build_stream(**stream_options)
    device = resolve_device(cfg.device)
    model = build_model(cfg, spec)
    run_dir = prepare_run_dir(cfg)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)

    lm = spec.task == "lm"
    criterion = LMCrossEntropy() if lm else torch.nn.CrossEntropyLoss()
    optimizer = LazyAdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    matrix = ExperienceMatrix("perplexity" if lm else "accuracy")
    usage = ExpertUsageMetric(model)
    tb = TensorboardLogger(run_dir) if cfg.log.tensorboard else None
    loggers = [lg for lg in (tb, InteractiveLogger() if cfg.log.progress else None) if lg]
    evaluator = EvaluationPlugin(
        matrix, usage, MoEMetric(), loss_metrics(experience=True, stream=True), loggers=loggers
    )
    plugins = [
        FreezeSharedPlugin(list(cfg.model.freeze_after_first)),
        AuxLossPlugin(),
        *build_regularization(cfg),
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

    test_stream = spec.benchmark.test_stream
    joint = cfg.train.strategy == "joint"
    if cfg.train.eval_initial and not joint:  # Avalanche's JointTraining adapts no model yet
        strategy.eval(test_stream)  # the random-init row, for forward transfer
    if joint:
        strategy.train(spec.benchmark.train_stream)  # one row: the whole stream at once
        strategy.eval(test_stream)
    else:
        for experience in spec.benchmark.train_stream:
            strategy.train(experience)
            strategy.eval(test_stream)

    write_report(
        run_dir,
        cfg=cfg,
        spec=spec,
        matrix=matrix,
        usage=usage,
        model=model,
        writer=tb.writer if tb else None,
        wall_s=time.time() - start,
    )
    if tb is not None:
        tb.writer.close()
    return run_dir

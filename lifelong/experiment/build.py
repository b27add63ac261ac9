"""``build_experiment``: everything a run needs, from one config, in one place.

``lifelong run``, ``lifelong eval`` and the benchmarks all build their runs here, so a run
and its benchmark cannot drift apart. Nothing is written to disk: a config, stream or
model that is wrong fails here, before a run directory exists.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from ..data import StreamSpec, build_stream
from ..metrics import run_metrics
from ..models import CrossEntropy
from ..optim import LazyAdamW
from ..parallel import DataParallelPlugin, global_batchnorm
from ..plugins import (
    AuxLossPlugin,
    FiniteLossPlugin,
    FreezeSharedPlugin,
    FreshOptimizerPlugin,
    LRSchedulePlugin,
    PrecisionPlugin,
    StageStatisticsPlugin,
    WeightAveragePlugin,
)
from .memory import check_fits
from .models import build_model
from .strategy import build_regularization, build_strategy


@dataclass
class Experiment:
    """The parts of a run, as ``build_experiment`` wired them."""

    spec: StreamSpec  # the stream: benchmark, task, scenario, experience names
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    criterion: nn.Module
    metrics: dict  # name -> Avalanche plugin metric (``lifelong.metrics.RUN_METRICS``)
    plugins: list  # the strategy's plugins in the order it calls them, evaluator last
    strategy: object  # the Avalanche strategy


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available; use device=auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device={name!r} is not supported; choose auto, cpu or cuda")
    return torch.device(name)


def build_stream_from_config(cfg) -> StreamSpec:
    """The ``StreamSpec`` of a run config's ``stream`` group (``kind`` plus its options)."""
    return build_stream(**OmegaConf.to_container(cfg.stream, resolve=True))


def build_experiment(
    cfg,
    *,
    loggers: Sequence = (),
    metrics: bool = True,
    first_plugins: Sequence = (),
    data_parallel: bool = False,
) -> Experiment:
    """Seed, then build the stream, model, optimizer, criterion, metrics, plugins and
    strategy of ``cfg``.

    Args:
        loggers: Avalanche loggers for the evaluator (TensorBoard, progress bars).
        metrics: False evaluates with no metric (a benchmark that only times training).
        first_plugins: plugins that run before the run's own, e.g. a timer.
        data_parallel: train as one rank of an initialised process group
            (``lifelong.parallel``): BatchNorm over the whole batch, ``DataParallelPlugin``.
    """
    from avalanche.evaluation.metrics import loss_metrics
    from avalanche.training.plugins import EvaluationPlugin

    seed_everything(cfg.seed)
    spec = build_stream_from_config(cfg)
    device = resolve_device(cfg.device)
    check_fits(cfg, spec, device)  # before allocating: a model too large is one line
    model = build_model(cfg, spec)
    if data_parallel:
        global_batchnorm(model, device.type)  # before the optimizer: the same tensors anyway
    t = cfg.train
    criterion = CrossEntropy(label_smoothing=t.label_smoothing)
    optimizer = LazyAdamW(
        model.parameters(), lr=t.lr, weight_decay=t.weight_decay, moments=t.moments
    )
    run = run_metrics(spec.task, model) if metrics else {}
    extra = [loss_metrics(experience=True, stream=True)] if metrics else []
    evaluator = EvaluationPlugin(*run.values(), *extra, loggers=list(loggers))
    plugins = [
        *first_plugins,
        # First after the caller's: every plugin that reads the model when an experience
        # ends (an anchor, the selectors' statistics) must see the averaged weights.
        *([WeightAveragePlugin(t.ema)] if t.ema else []),
        FreezeSharedPlugin(list(cfg.model.freeze_after_first)),
        *([FreshOptimizerPlugin()] if t.reset_optimizer else []),
        AuxLossPlugin(),
        *(
            [LRSchedulePlugin(t.lr, schedule=t.schedule, warmup=t.warmup)]
            if t.schedule != "constant"
            else []
        ),
        *build_regularization(cfg),
        StageStatisticsPlugin(),  # inferred routing: the selectors learn each experience
        *([PrecisionPlugin(device.type)] if t.precision == "bf16" else []),
        # After every plugin that adds to the loss: it weighs the whole loss by this rank's
        # share of the batch, before FiniteLossPlugin checks it.
        *([DataParallelPlugin()] if data_parallel else []),
        FiniteLossPlugin(),  # last: it checks the loss with every penalty added
    ]
    strategy = build_strategy(
        cfg, model, optimizer, criterion, evaluator=evaluator, device=device, plugins=plugins
    )
    return Experiment(
        spec, device, model, optimizer, criterion, run, list(strategy.plugins), strategy
    )

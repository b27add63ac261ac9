"""The Avalanche strategy and the regularisation plugin a run config asks for."""

from ..config import ConfigError
from ..config_checks import regularizers
from ..plugins import IndexedExperienceBuffer
from ..regularizers import RegularizationPlugin, build_regularizer

STRATEGIES = ("naive", "ewc", "si", "lwf", "replay", "joint")


def build_regularization(cfg) -> list:
    """[RegularizationPlugin] for the regularisers train.regularizer names, or [] for none."""
    t = cfg.train
    specs = regularizers(t, error=ConfigError)
    if not specs:
        return []
    if t.strategy in ("joint", "ewc", "si", "lwf"):
        raise ConfigError(
            f"train.regularizer={t.regularizer} needs a sequential strategy without its own "
            f"regulariser (naive or replay), not train.strategy={t.strategy}"
        )
    built = []
    for name, _, options in specs:
        if name == "distill" and cfg.model.kind == "mlp" and cfg.model.head == "multi":
            options.setdefault("labels", "previous")  # the old copy has no head for a new task
        built.append(build_regularizer(name, **options))  # names valid names/options
    return [RegularizationPlugin(built, weights=[lam for _, lam, _ in specs])]


def build_strategy(cfg, model, optimizer, criterion, *, evaluator, device, plugins=()):
    """The ``train.strategy``, over ``plugins`` (replay's memory goes first)."""
    from avalanche.training import EWC, JointTraining, LwF, Naive, SynapticIntelligence
    from avalanche.training.plugins import ReplayPlugin

    t = cfg.train
    if t.strategy not in STRATEGIES:
        choices = ", ".join(STRATEGIES)
        raise ConfigError(f"train.strategy={t.strategy!r} is not supported; choose {choices}")
    if t.strategy == "lwf" and cfg.model.kind == "transformer":
        raise ConfigError(
            "train.strategy=lwf distils class logits (Avalanche LwF) and does not support "
            "language models; use naive, ewc, si or replay"
        )
    plugins = list(plugins)
    if t.strategy == "replay":
        # Avalanche's replay, with a memory a checkpoint can hold (sample indices).
        memory = IndexedExperienceBuffer(t.replay_mem_size)
        plugins.insert(0, ReplayPlugin(mem_size=t.replay_mem_size, storage_policy=memory))
    common = dict(
        model=model,
        optimizer=optimizer,
        criterion=criterion,
        train_mb_size=t.batch_size,
        train_epochs=t.epochs,
        eval_mb_size=t.eval_batch_size,
        device=device,
        plugins=plugins,
        evaluator=evaluator,
    )
    if t.strategy == "ewc":
        return EWC(ewc_lambda=t.ewc_lambda, mode="separate", **common)
    if t.strategy == "si":
        return SynapticIntelligence(si_lambda=t.si_lambda, **common)
    if t.strategy == "lwf":
        return LwF(alpha=t.lwf_alpha, temperature=t.lwf_temperature, **common)
    if t.strategy == "joint":  # the upper bound: one pass over the union of the stream
        return JointTraining(**common)
    return Naive(**common)  # naive, and replay through its plugin

"""Every numeric and enumerated field of a run config, checked before anything is written.

``load_config`` calls ``check_config``: a bad value (``train.epochs=0``, ``train.lr=-0.1``,
``growth.routing=infered``) raises ``ConfigError`` with one line naming the key, the value
and what it accepts, before a run directory exists. The layer groups (``model.peer.*``) are
checked by the layers' own constructors, which also run before anything is written.
"""

import math

from omegaconf import DictConfig, ListConfig, OmegaConf

from .checks import (
    fraction,
    non_negative_int,
    non_negative_number,
    one_of,
    positive_int,
    positive_number,
    unit_interval,
)


def _finite(check):
    """``check`` that also refuses inf and nan (a learning rate of inf passes ``> 0``)."""

    def checked(name: str, value, *, error: type[ValueError]):
        value = check(name, value, error=error)
        if not math.isfinite(value):
            raise error(f"{name}={value!r} must be a finite number")
        return value

    return checked


def _below_one(check):
    """``check`` that also refuses 1 and more (a warm-up as long as the experience)."""

    def checked(name: str, value, *, error: type[ValueError]):
        value = check(name, value, error=error)
        if value >= 1:
            raise error(f"{name}={value!r} must be below 1 (a fraction of each experience)")
        return value

    return checked


NUMBERS = {
    "seed": non_negative_int,
    "model.dim": positive_int,
    "model.n_layers": positive_int,
    "model.n_heads": positive_int,
    "model.dropout": unit_interval,
    "train.epochs": positive_int,
    "train.batch_size": positive_int,
    "train.eval_batch_size": positive_int,
    "train.lr": _finite(positive_number),
    "train.warmup": _below_one(non_negative_number),
    "train.weight_decay": _finite(non_negative_number),
    "train.ema": unit_interval,
    "train.label_smoothing": unit_interval,
    "train.ewc_lambda": _finite(non_negative_number),
    "train.si_lambda": _finite(non_negative_number),
    "train.lwf_alpha": _finite(non_negative_number),
    "train.lwf_temperature": _finite(positive_number),
    "train.replay_mem_size": positive_int,
    "growth.selector_shrinkage": fraction,
    "growth.selector_features": non_negative_int,
    "dist.timeout_s": _finite(positive_number),
}


def choices() -> dict[str, tuple[str, ...]]:
    """Enumerated keys -> their valid values, read from where each is defined."""
    from .experiment.strategy import STRATEGIES
    from .models import GROWTH_POLICIES, ROUTINGS
    from .models.growing import EXPERT_INITS
    from .models.selectors import SELECTORS
    from .models.shape_selector import ORDERS
    from .optim.lazy_adamw import MOMENTS
    from .plugins import PRECISIONS, SCHEDULES

    return {
        "model.kind": ("mlp", "transformer"),
        "model.head": ("single", "multi"),
        "growth.policy": GROWTH_POLICIES,
        "growth.init": EXPERT_INITS,
        "growth.routing": ROUTINGS,
        "growth.selector": SELECTORS,
        "growth.selector_order": ORDERS,
        "train.strategy": STRATEGIES,
        "log.level": ("debug", "info", "warning", "error"),
        "train.precision": PRECISIONS,
        "train.moments": MOMENTS,
        "train.schedule": SCHEDULES,
        "dist.backend": ("auto", "gloo", "nccl"),
    }


def check_config(cfg: DictConfig, *, error: type[ValueError]) -> None:
    """Raise ``error`` naming the first numeric or enumerated key outside its range."""
    for key, check in NUMBERS.items():
        check(key, _get(cfg, key), error=error)
    for key, valid in choices().items():
        one_of(key, _get(cfg, key), valid, error=error)
    name = str(cfg.name)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise error(
            f"name={name!r} must be a plain folder name (no '/', not '.' or '..'): the run "
            "directory is runs_dir/name; pass the folder with runs_dir=..."
        )
    if cfg.dist.shard_experts and cfg.model.ffn != "peer":
        raise error(
            f"dist.shard_experts=true spreads PEER's expert tables over the ranks; "
            f"model.ffn={cfg.model.ffn} has none: use model.ffn=peer or dist.shard_experts=false"
        )
    lm = cfg.model.kind == "transformer"
    names = [name for name, _, _ in regularizers(cfg.train, error=error)]
    if "gen_distill" in names and not (lm and cfg.growth.routing == "inferred"):
        raise error(
            "train.regularizer=gen_distill samples each stage's own text, so it needs a byte "
            "language model with inferred routing: set growth.routing=inferred on a text "
            "stream, or choose another regularizer (l2, ewc, si, distill)"
        )
    device = str(cfg.device)
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise error(f"device={device!r} is not supported; choose auto, cpu, cuda or cuda:N")


def regularizers(train: DictConfig, *, error: type[ValueError]) -> list[tuple[str, float, dict]]:
    """(name, λ, options) for each regulariser ``train.regularizer`` names: [] for "none";
    one for a name (its options: ``train.regularizer_options``); one per entry for a list,
    with a list of λ as long and the options keyed by name (``regularizer_options.l2``)."""
    from .regularizers import REGULARIZERS

    names, lams, options = train.regularizer, train.regularizer_lambda, train.regularizer_options
    if not isinstance(names, ListConfig):
        one_of("train.regularizer", names, ("none", *REGULARIZERS), error=error)
        if names == "none":
            return []
        lam = _finite(non_negative_number)("train.regularizer_lambda", lams, error=error)
        return [(str(names), float(lam), OmegaConf.to_container(options, resolve=True))]
    names = [str(name) for name in names]
    for i, name in enumerate(names):
        one_of(f"train.regularizer[{i}]", name, tuple(REGULARIZERS), error=error)
    if not names or len(set(names)) < len(names):
        raise error(f"train.regularizer={names} must name each regulariser once")
    if not isinstance(lams, ListConfig) or len(lams) != len(names):
        raise error(
            f"train.regularizer={names} is a list: give train.regularizer_lambda as a list "
            f"of {len(names)} weights, one each (it is {lams!r})"
        )
    for key in options:
        if key not in names or not isinstance(options[key], DictConfig):
            raise error(
                f"train.regularizer_options.{key}: with a list of regularizers, options go "
                f"under the name of one of {names}, e.g. "
                f"train.regularizer_options.{names[-1]}.<option>=<value>"
            )
    return [
        (
            name,
            float(_finite(non_negative_number)(f"train.regularizer_lambda[{i}]", lam, error=error)),
            OmegaConf.to_container(options[name], resolve=True) if name in options else {},
        )
        for i, (name, lam) in enumerate(zip(names, lams, strict=True))
    ]


def _get(cfg: DictConfig, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node

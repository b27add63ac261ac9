"""The growing layer a run config asks for: ``model.ffn`` names a ``LAYERS`` entry, whose
group ``model.<name>`` holds its keyword arguments (docs/extending.md)."""

import re

import torch.distributed as dist

from ..checks import positive_int
from ..config import ConfigError, keys_named
from ..layers import LAYERS, GrowingLayer, ShardedPEER
from ..models import GrowingExperts
from ..models.selectors import build_selector
from .sizing import fitted_options


def build_layer(cfg) -> tuple[GrowingLayer, int | None]:
    """(the configured layer, its grow size). Widths left at None are sized to the active
    parameters of ``model.peer`` (``sizing``); an argument the layer refuses is reported
    with its config key (``model.peer.topk=5 exceeds ...``)."""
    name = cfg.model.ffn
    options = fitted_options(cfg)
    grow_size = cfg.model[name].grow_size
    try:
        if grow_size is not None:
            positive_int("grow_size", grow_size)
        layer = _builder(cfg)(cfg.model.dim, **options)
    except ValueError as err:
        message = keys_named(str(err), f"model.{name}.", [*options, "grow_size"])
        raise ConfigError(keys_named(message, "model.", ["dim"])) from None
    if not isinstance(layer, GrowingLayer):
        raise ConfigError(
            f"model.ffn={name}: LAYERS[{name!r}].build returned a {type(layer).__name__}, "
            f"which is not a GrowingLayer (docs/extending.md)"
        )
    return layer, grow_size


def _builder(cfg):
    """The layer's build function: ``ShardedPEER`` when ``dist.shard_experts`` and this
    process is one of several ranks (config_checks allows it for PEER only)."""
    if cfg.dist.shard_experts and dist.is_initialized() and dist.get_world_size() > 1:
        return ShardedPEER
    return LAYERS[cfg.model.ffn].build


def build_growing(cfg, *, causal: bool = False) -> GrowingExperts:
    """The configured layer inside ``GrowingExperts`` with the run's growth settings;
    ``causal``: it sits in a language model (inferred routing then looks back only)."""
    layer, grow_size = build_layer(cfg)
    g = cfg.growth
    selector = None
    if g.routing == "inferred":
        if g.selector in ("byte_bigram", "byte_shape") and not causal:
            raise ConfigError(
                f"growth.selector={g.selector} reads the input bytes of a byte language model; "
                f"model.kind={cfg.model.kind} has none: use growth.selector=gaussian"
            )
        if g.selector == "key_affinity" and not callable(getattr(layer, "queries", None)):
            raise ConfigError(
                f"growth.selector=key_affinity scores product keys against a query network; "
                f"model.ffn={cfg.model.ffn} has none: use growth.selector=gaussian"
            )
        try:
            selector = build_selector(
                g.selector,
                dim=cfg.model.dim,
                order=g.selector_order,
                shrinkage=g.selector_shrinkage,
                random_features=g.selector_features,
                per_class=g.selector_per_class,
                seed=cfg.seed,
            )
        except ValueError as err:  # name the config keys: growth.selector_shrinkage=...
            message = re.sub(r"\b(shrinkage|random_features)=", r"growth.selector_\1=", str(err))
            message = message.replace("selector_random_features", "selector_features")
            raise ConfigError(keys_named(message, "growth.", ["selector"])) from None
    return GrowingExperts(
        layer,
        policy=g.policy,
        grow_size=grow_size,
        init=g.init,
        routing=g.routing,
        freeze_query=g.freeze_query,
        selector=selector,
        causal=causal,
    )

"""The growing layer a run config asks for: ``model.ffn`` names a ``LAYERS`` entry, whose
group ``model.<name>`` holds its keyword arguments (docs/extending.md)."""

from ..checks import positive_int
from ..config import ConfigError, keys_named
from ..layers import LAYERS, GrowingLayer
from ..models import GrowingExperts
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
        layer = LAYERS[name].build(cfg.model.dim, **options)
    except ValueError as err:
        message = keys_named(str(err), f"model.{name}.", [*options, "grow_size"])
        raise ConfigError(keys_named(message, "model.", ["dim"])) from None
    if not isinstance(layer, GrowingLayer):
        raise ConfigError(
            f"model.ffn={name}: LAYERS[{name!r}].build returned a {type(layer).__name__}, "
            f"which is not a GrowingLayer (docs/extending.md)"
        )
    return layer, grow_size


def build_growing(cfg) -> GrowingExperts:
    """The configured layer inside ``GrowingExperts`` with the run's growth settings."""
    layer, grow_size = build_layer(cfg)
    g = cfg.growth
    return GrowingExperts(
        layer,
        policy=g.policy,
        grow_size=grow_size,
        init=g.init,
        routing=g.routing,
        freeze_query=g.freeze_query,
    )

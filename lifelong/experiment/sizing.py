"""Equal active parameters per token (docs/benchmarks.md): baselines sized to the PEER layer.

A comparison between layers is fair when one token uses as many parameters in each. The
reference is the configured PEER layer (``model.peer``), optionally after some growths;
a layer whose registry entry has a ``fit`` is sized to it. In a run config a width left
at None (``model.dense.hidden``, ``model.moe.hidden``) is filled this way, before growth;
``benchmarks/cl_suite.py`` sizes every method to PEER after its last growth.
"""

from omegaconf import OmegaConf

from ..config import ConfigError, keys_named
from ..layers import LAYERS
from ..layers.peer import peer_active_params, sub_keys_for

REFERENCE = "peer"


def reference_active_params(cfg, *, growths: int = 0) -> int:
    """Parameters one token uses in ``model.peer`` after ``growths`` growths (each adds
    ``model.peer.grow_size`` sub-keys per side, and every sub-key is scored)."""
    p, dim = cfg.model[REFERENCE], cfg.model.dim
    try:
        sub_keys = sub_keys_for(p.num_experts)
    except ValueError as err:
        raise ConfigError(
            f"{keys_named(str(err), 'model.peer.', ['num_experts'])} (model.{cfg.model.ffn} "
            f"is sized to the active parameters of model.peer)"
        ) from None
    return peer_active_params(
        dim,
        heads=p.heads,
        topk=p.topk,
        key_dim=p.key_dim or dim,
        query_batchnorm=p.query_batchnorm,
        sub_keys=sub_keys + growths * p.grow_size,
    )


def fitted_options(cfg, *, growths: int = 0, missing_only: bool = True) -> dict:
    """The options of the configured layer (``model.<model.ffn>``, without ``grow_size``)
    with its widths fitted to the reference after ``growths`` growths of each (the layer's
    own growths add to its router or units only under a growing policy). ``missing_only``
    fits only the options set to None; otherwise every option ``fit`` returns is set."""
    name = cfg.model.ffn
    options = OmegaConf.to_container(cfg.model[name], resolve=True)
    grow_size = options.pop("grow_size")
    fit = LAYERS[name].fit
    if fit is None or name == REFERENCE or (missing_only and None not in options.values()):
        return options
    own = growths if cfg.growth.policy != "never" else 0
    added = own * (grow_size or 0)
    target = reference_active_params(cfg, growths=growths)
    for key, value in fit(target, dim=cfg.model.dim, options=options, added=added).items():
        if not missing_only or options[key] is None:
            options[key] = value
    return options

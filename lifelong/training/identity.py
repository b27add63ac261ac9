"""Which run a checkpoint belongs to: a fingerprint of the resolved config, and a check of
the model's parameter shapes, so a checkpoint copied from another run is refused in one
line instead of being resumed, scored, or failing with a size-mismatch traceback.

The fingerprint leaves out what may change without changing what a run computes:
``resume``, ``log``, ``runs_dir`` (a run directory moved elsewhere resumes in its new
place) and ``dist`` (a data-parallel run computes what one process computes, so a run
may resume under another number of ranks). It also leaves out every key at its schema
default, so a key that a later version adds with a default that computes what the runs
before it computed (``train.schedule=constant``) leaves their checkpoints usable.
"""

import hashlib
import json

from omegaconf import OmegaConf
from torch import nn

from .checkpoint import CheckpointError

NOT_COMPUTED = ("resume", "log", "runs_dir", "dist")


def computed_config(cfg) -> dict:
    """The config as a plain dict, without the keys that do not change what a run computes."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in plain.items() if k not in NOT_COMPUTED}


# Keys added after checkpoints first carried a fingerprint (scheme 1 hashed every key), with
# the value that computes what the runs before them computed.
ADDED_SINCE_SCHEME_1 = {"train": {"schedule": "constant", "warmup": 0.0}}
_DEFAULT = object()


def _departures(value, default):
    """``value`` without the leaves equal to ``default``'s at the same path (``_DEFAULT``
    when nothing departs)."""
    if value == default:
        return _DEFAULT
    if isinstance(value, dict) and isinstance(default, dict):
        kept = {k: _departures(v, default.get(k, _DEFAULT)) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not _DEFAULT}
    return value


def _sha(plain) -> str:
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(cfg) -> dict:
    """{"config": sha256 of the computed config's departures from the schema defaults,
    "scheme": 2, "name", "seed"}: saved in every checkpoint."""
    from ..config import schema

    departures = _departures(computed_config(cfg), computed_config(schema()))
    return {
        "config": _sha({} if departures is _DEFAULT else departures),
        "scheme": 2,
        "name": str(cfg.name),
        "seed": int(cfg.seed),
    }


def scheme_1(cfg) -> str:
    """The scheme-1 hash (every key) of ``cfg`` as the version that wrote it saw it."""
    plain = computed_config(cfg)
    for group, keys in ADDED_SINCE_SCHEME_1.items():
        for key, value in keys.items():
            if plain.get(group, {}).get(key, value) == value:
                plain.get(group, {}).pop(key, None)
    return _sha(plain)


def check_fingerprint(state: dict, cfg, path) -> None:
    """Refuse a checkpoint written by a run with another config (one line naming both)."""
    saved, mine = state.get("fingerprint"), fingerprint(cfg)
    if saved is None:
        return  # written before checkpoints carried a fingerprint
    expected = mine["config"] if saved.get("scheme") == 2 else scheme_1(cfg)
    if saved.get("config") == expected:
        return
    raise CheckpointError(
        f"checkpoint '{path}' was written by another run (name={saved.get('name')}, "
        f"seed={saved.get('seed')}, config {saved.get('config', '')[:12]}) than this one "
        f"(name={mine['name']}, seed={mine['seed']}, config {mine['config'][:12]}); "
        "use the run directory that wrote it, or start a new run"
    )


def load_weights(model: nn.Module, weights: dict, path) -> None:
    """``model.load_state_dict(weights)``, refusing weights of another architecture in one
    line that names the first parameter that differs. Only parameters are compared up
    front: buffers such as a selector's statistics take the saved shapes as they load."""
    for name, param in model.named_parameters():
        if name not in weights:
            raise CheckpointError(
                f"checkpoint '{path}' does not fit this model: it has no '{name}' "
                "(another architecture); use the run directory that wrote it"
            )
        if tuple(weights[name].shape) != tuple(param.shape):
            raise CheckpointError(
                f"checkpoint '{path}' does not fit this model: '{name}' has shape "
                f"{tuple(weights[name].shape)} in the checkpoint and {tuple(param.shape)} "
                "in the model (another architecture); use the run directory that wrote it"
            )
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:  # e.g. keys only the checkpoint has
        first = str(err).splitlines()[0]
        raise CheckpointError(f"checkpoint '{path}' does not fit this model: {first}") from None

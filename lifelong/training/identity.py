"""Which run a checkpoint belongs to: a fingerprint of the resolved config, and a check of
the model's parameter shapes, so a checkpoint copied from another run is refused in one
line instead of being resumed, scored, or failing with a size-mismatch traceback.

The fingerprint leaves out what may change without changing what a run computes:
``resume``, ``log``, ``runs_dir`` (a run directory moved elsewhere resumes in its new
place) and ``dist`` (a data-parallel run computes what one process computes, so a run
may resume under another number of ranks). A key that only one side has is the same run
while it holds its schema default: a later version may add a key (``train.schedule``)
whose default computes what the runs before it computed, and their checkpoints and
``resume=true`` keep working.
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


# Keys added after checkpoints first carried a fingerprint (then a hash of every key), with
# the value that computes what the runs before them computed.
ADDED_SINCE_HASH_ONLY = {"train": {"schedule": "constant", "warmup": 0.0}}
_ABSENT = object()


def first_difference(saved: dict, given: dict, default: dict, prefix: str = "") -> str | None:
    """Dotted path of the first key whose value differs between two plain configs, with
    both values; None if they compute the same run. A key only one side has (a version
    that added it wrote the other) is the same run while it holds the schema ``default``."""
    for key in sorted(set(saved) | set(given), key=str):
        a, b = saved.get(key, _ABSENT), given.get(key, _ABSENT)
        d = default.get(key, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, d if isinstance(d, dict) else {}, f"{prefix}{key}.")
            if found:
                return found
        elif (a is _ABSENT or b is _ABSENT) and (b if a is _ABSENT else a) == d:
            continue  # a key added since, at the default that computes the old runs
        elif a != b:
            return f"{prefix}{key} (run has {_shown(a)}, given {_shown(b)})"
    return None


def _shown(value) -> str:
    return "no such key" if value is _ABSENT else repr(value)


def schema_defaults() -> dict:
    from ..config import schema

    return computed_config(schema())


def _sha(plain) -> str:
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(cfg) -> dict:
    """{"config": sha256 of the computed config (a short id for messages), "computed": the
    computed config itself, "name", "seed"}: saved in every checkpoint (plain values, so a
    weights-only load reads it)."""
    plain = computed_config(cfg)
    return {"config": _sha(plain), "computed": plain, "name": str(cfg.name), "seed": int(cfg.seed)}


def _hash_only_difference(saved: dict, cfg) -> str | None:
    """For a checkpoint that carries only the hash: "another config" unless the hash of
    ``cfg`` without the keys added since (at their defaults) matches."""
    plain = computed_config(cfg)
    for group, keys in ADDED_SINCE_HASH_ONLY.items():
        for key, value in keys.items():
            if plain.get(group, {}).get(key, value) == value:
                plain.get(group, {}).pop(key, None)
    return None if saved.get("config") == _sha(plain) else "another config"


def check_fingerprint(state: dict, cfg, path) -> None:
    """Refuse a checkpoint written by a run with another config (one line naming both
    runs and the first key that differs)."""
    saved, mine = state.get("fingerprint"), fingerprint(cfg)
    if saved is None:
        return  # written before checkpoints carried a fingerprint
    if "computed" in saved:
        diff = first_difference(saved["computed"], mine["computed"], schema_defaults())
    else:
        diff = _hash_only_difference(saved, cfg)
    if diff is None:
        return
    raise CheckpointError(
        f"checkpoint '{path}' was written by another run (name={saved.get('name')}, "
        f"seed={saved.get('seed')}, config {saved.get('config', '')[:12]}) than this one "
        f"(name={mine['name']}, seed={mine['seed']}, config {mine['config'][:12]}; "
        f"first difference: {diff}); use the run directory that wrote it, or start a new run"
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

"""Which run a checkpoint belongs to: a fingerprint of the resolved config, and a check of
the model's parameter shapes, so a checkpoint copied from another run is refused in one
line instead of being resumed, scored, or failing with a size-mismatch traceback.

The fingerprint leaves out what may change without changing what a run computes:
``resume``, ``log``, ``runs_dir`` (a run directory moved elsewhere resumes in its new
place) and ``dist`` (a data-parallel run computes what one process computes, so a run
may resume under another number of ranks).
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


def fingerprint(cfg) -> dict:
    """{"config": sha256 of the computed config, "name", "seed"}: saved in every checkpoint."""
    text = json.dumps(computed_config(cfg), sort_keys=True, default=str)
    return {
        "config": hashlib.sha256(text.encode()).hexdigest(),
        "name": str(cfg.name),
        "seed": int(cfg.seed),
    }


def check_fingerprint(state: dict, cfg, path) -> None:
    """Refuse a checkpoint written by a run with another config (one line naming both)."""
    saved, mine = state.get("fingerprint"), fingerprint(cfg)
    if saved is None or saved.get("config") == mine["config"]:
        return  # matching, or written before checkpoints carried a fingerprint
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

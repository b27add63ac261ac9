"""Checkpoint files: atomic writes and loading that never runs code from the file.

A checkpoint holds tensors and plain containers only (dict, list, tuple, str, int, float,
bool, None), so ``torch.load(weights_only=True)`` reads it back; that loader refuses any
pickled object (a class, a function, a ``__reduce__`` payload) instead of executing it.
Writes go to a temporary file in the same directory and are renamed over the target
(``os.replace`` is atomic on POSIX), so a crash mid-write leaves the previous checkpoint
whole.
"""

import io
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write

CHECKPOINT = "checkpoint.pt"
FORMAT = 1  # bump when the layout of the saved dict changes


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or trusted, phrased for the command line."""


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write(Path(path), buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    """The dict saved by ``save_checkpoint``; refuses files that carry pickled objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint '{path}' is empty (0 bytes); it was never written")
    if not zipfile.is_zipfile(path):  # what torch.save writes
        raise CheckpointError(
            f"checkpoint '{path}' is not a checkpoint written by lifelong (not a torch archive); "
            "it was not loaded"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only's message explains at length how to allow globals; the short
        # version is that this file holds something other than tensors and containers.
        # torch's message suggests weights_only=False, which would run the file's code: keep
        # only the reason it names, never that advice.
        reason = next(
            (line.strip() for line in str(err).splitlines() if "Unsupported" in line),
            "it holds something other than tensors and plain containers",
        )
        raise CheckpointError(
            f"checkpoint '{path}' carries a pickled object and was not loaded ({reason}); "
            "only files written by lifelong (tensors and plain containers) are accepted"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"checkpoint '{path}' is unreadable: {err}".splitlines()[0]) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint '{path}' is not a lifelong checkpoint of format {FORMAT}; "
            "start a new run (name=...) instead of resuming this one"
        )
    return state


def rng_state() -> dict:
    """Every random generator a run draws from, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))  # a tuple again after loading
    kind, keys, pos, has_gauss, gauss_np = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss_np))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

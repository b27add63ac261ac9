"""Launching `lifelong run` on two gloo ranks as a user would, and the oracle it is held
to: the same run in one process (an ordinary run, no process group)."""

import json
import os
import socket
import sys
from pathlib import Path

from tiny_streams import one_thread

from lifelong.config import load_config
from lifelong.training.distributed import STATE_DIGESTS
from lifelong.training.run import run

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DIGITS = CONFIGS / "split_digits_task_il_smoke.yaml"
TEXT = CONFIGS / "text_domains_smoke.yaml"
QUIET = ["log.progress=false", "log.png=false", "log.tensorboard=false"]
TOLERANCE = 1e-4  # absolute for figures up to 1 (accuracy, usage), relative above (perplexity)
LAUNCH_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_ranks(config: Path, runs: Path, name: str, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"),
        f"--master_port={free_port()}",
        *("-m", "lifelong", "run", str(config), f"runs_dir={runs}", f"name={name}"),
        *QUIET,
        *extra,
    ]


def environment(digests: Path | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(STATE_DIGESTS, None)
    if digests is not None:
        digests.mkdir(parents=True, exist_ok=True)
        env[STATE_DIGESTS] = str(digests)
    return env


def one_process(config: Path, runs: Path, name: str, *extra: str) -> dict:
    """The oracle: the same run in this process, without torchrun."""
    with one_thread():
        run_dir = run(load_config(config, [f"runs_dir={runs}", f"name={name}", *QUIET, *extra]))
    return json.loads((run_dir / "metrics.json").read_text())


def numeric_differences(a, b, path: str = "") -> list[str]:
    """Where two metrics.json trees differ: numbers beyond TOLERANCE, anything else at all."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in numeric_differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} and {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in numeric_differences(x, y, f"{path}[{i}]")
        ]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        close = abs(a - b) <= TOLERANCE * max(1.0, abs(a))
        return [] if close else [f"{path}: {a} and {b}"]
    return [] if a == b else [f"{path}: {a!r} and {b!r}"]

"""One process per run directory: an OS file lock (``fcntl.flock``) on
``runs_dir/.<name>.lock``, held while the run trains and reports.

The kernel releases a flock when its process dies, however it dies, so a crashed run never
leaves a stale lock behind. The lock file sits beside the run directory, not in it, so it
is taken before the directory's existence is even checked: two runs of one name started
together cannot both decide to start it. ``lifelong eval`` only reads, and takes no lock.
"""

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import RunError


@contextlib.contextmanager
def run_lock(runs_dir: Path, name: str):
    """Hold the lock of run ``name`` under ``runs_dir`` (created if missing) or raise
    ``RunError`` naming the process that holds it."""
    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        handle = open(runs_dir / f".{name}.lock", "a+")  # noqa: SIM115 - held until the end
    except OSError as err:
        raise RunError(
            f"runs_dir '{runs_dir}' cannot hold run directories ({err.strerror}); "
            "pass runs_dir=<a writable folder>"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunError(
                f"run directory '{runs_dir / name}' is in use by process {holder}; wait "
                "for it to finish or choose another name=..."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield

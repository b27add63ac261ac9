"""Kill a real run at moments spread over its whole life (start-up, training, evaluation,
checkpoint writes, the report), resume it until it finishes, and compare: every resumed
run ends with a complete report whose metrics.json is byte-identical to an uninterrupted
run's."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lifelong.training.report import report_complete

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "split_digits_task_il_smoke.yaml")
FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.85, 0.95)  # of the uninterrupted run's wall time


def command(runs: Path, name: str, *extra: str) -> list[str]:
    base = [sys.executable, "-m", "lifelong", "run", CONFIG, f"runs_dir={runs}", f"name={name}"]
    return [*base, "log.progress=false", *extra]


def test_killed_at_any_moment_a_run_resumes_to_the_same_report(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(command(tmp_path, "whole"), check=True, capture_output=True, env=env)
    duration = time.perf_counter() - start
    reference = (tmp_path / "whole" / "metrics.json").read_bytes()
    for i, fraction in enumerate(FRACTIONS):
        name = f"killed{i}"
        victim = subprocess.Popen(
            command(tmp_path, name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        time.sleep(fraction * duration)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # A kill before the directory existed leaves nothing to resume: resume=true starts it.
        done = subprocess.run(command(tmp_path, name, "resume=true"), capture_output=True, env=env)
        assert done.returncode == 0, (fraction, done.stderr.decode()[-2000:])
        run_dir = tmp_path / name
        assert report_complete(run_dir), fraction
        assert (run_dir / "metrics.json").read_bytes() == reference, fraction

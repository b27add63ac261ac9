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
    # Two runs at a time, the victims as the reference: each pair shares the two cores in
    # the same way, so a fraction of the reference's wall time lands at the same point of a
    # victim's life, and the test takes half the time of one run after another.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    start = time.perf_counter()
    wholes = [subprocess.Popen(command(tmp_path, f"whole{i}"), **quiet) for i in (0, 1)]
    assert [whole.wait() for whole in wholes] == [0, 0]
    duration = time.perf_counter() - start
    reference = (tmp_path / "whole0" / "metrics.json").read_bytes()
    assert (tmp_path / "whole1" / "metrics.json").read_bytes() == reference
    for pair in zip(FRACTIONS[::2], FRACTIONS[1::2], strict=True):
        names = [f"killed{fraction}" for fraction in pair]
        victims = [subprocess.Popen(command(tmp_path, name), **quiet) for name in names]
        begun = time.perf_counter()
        for fraction, victim in zip(pair, victims, strict=True):
            time.sleep(max(0.0, begun + fraction * duration - time.perf_counter()))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
        # A kill before the directory existed leaves nothing to resume: resume=true starts it.
        piped = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "env": env}
        resumed = [subprocess.Popen(command(tmp_path, n, "resume=true"), **piped) for n in names]
        for fraction, name, proc in zip(pair, names, resumed, strict=True):
            stderr = proc.communicate()[1]
            assert proc.returncode == 0, (fraction, stderr.decode()[-2000:])
            assert report_complete(tmp_path / name), fraction
            assert (tmp_path / name / "metrics.json").read_bytes() == reference, fraction

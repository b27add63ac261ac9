"""The command line: help texts, and one readable line with exit code 2 for bad input."""

import subprocess
import sys

import pytest

from lifelong.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "lifelong.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_help_texts(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "run" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for word in ("metrics.json", "tensorboard --logdir", "key=value", "name=", "runs_dir"):
        assert word in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "missing.yaml"], "config file 'missing.yaml' does not exist"),
        (
            ["run", "configs/split_digits_task_il.yaml", "train.epoch=1"],
            "did you mean train.epochs",
        ),
        (["run", "configs/split_digits_task_il.yaml", "train.epochs=two"], "train.epochs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    from pathlib import Path

    result = run_cli(*args, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lifelong: error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: lifelong" in capsys.readouterr().out

"""The command line: help texts (bad input and its one-line errors: test_bad_input.py)."""

import pytest

from lifelong.cli import main


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


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: lifelong" in capsys.readouterr().out

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


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert (
        exit_.value.code == 0
        and capsys.readouterr().out.strip() == f"lifelong {version('lifelong')}"
    )


def test_python_dash_m_runs_the_same_command_line():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "lifelong", "--version"], capture_output=True, text=True, cwd="/"
    )
    assert out.returncode == 0 and out.stdout.startswith("lifelong ")


def test_a_shipped_config_by_name_from_anywhere_and_print_config(capsys, monkeypatch, tmp_path):
    from omegaconf import OmegaConf

    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the package's own are used
    assert main(["run", "text_domains_smoke", "train.epochs=2", "--print-config"]) == 0
    cfg = OmegaConf.create(capsys.readouterr().out)
    assert cfg.name == "text_domains_smoke" and cfg.train.epochs == 2
    assert not (tmp_path / "runs").exists()  # printing the config runs nothing
    assert main(["run", "--print-config"]) == 0  # the default job's config
    assert OmegaConf.create(capsys.readouterr().out).name == "text_domains"


def test_an_unknown_config_name_lists_the_shipped_ones(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "text_domain_smoke"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "neither a file nor a shipped config" in err[0]
    assert "text_domains_smoke" in err[0]


def test_the_wheel_ships_the_configs_and_py_typed(tmp_path):
    """What a plain ``pip install .`` installs: the package's configs and py.typed."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q"]
        + [str(root), "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("lifelong-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"lifelong/configs/{p.name}" for p in (root / "lifelong" / "configs").glob("*.yaml")}
    assert shipped and shipped <= names
    assert "lifelong/py.typed" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_eval_under_torchrun_is_refused_in_one_line(capsys, monkeypatch, tmp_path):
    # torchrun sets WORLD_SIZE in every rank's environment; eval would score on each.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["eval", str(tmp_path / "some_run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lifelong eval runs in one process" in err[0]
    assert "without torchrun" in err[0] and "some_run" in err[0]

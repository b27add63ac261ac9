"""A run directory belongs to one run: a checkpoint from another run or architecture is
refused, one process at a time holds it, and a moved directory resumes where it is."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lifelong.cli import main
from lifelong.config import load_config
from lifelong.training.run import run

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "split_digits_task_il_smoke.yaml")
QUIET = ["log.progress=false", "log.tensorboard=false", "log.png=false"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("lifelong: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Runs a (seed 0) and b (seed 1), finished."""
    runs = tmp_path_factory.mktemp("runs")
    for name, seed in (("a", 0), ("b", 1)):
        run(load_config(CONFIG, [f"runs_dir={runs}", f"name={name}", f"seed={seed}", *QUIET]))
    return runs


def test_another_run_s_checkpoint_is_refused_by_eval_and_resume(two_runs, tmp_path, capsys):
    a = tmp_path / "a"
    shutil.copytree(two_runs / "a", a)
    shutil.copy(two_runs / "b" / "checkpoint.pt", a / "checkpoint.pt")
    assert main(["eval", str(a)]) == 2
    line = one_error_line(capsys)
    assert "written by another run (name=b, seed=1" in line and "(name=a, seed=0" in line
    (a / "metrics.json").unlink()  # as if a had been killed before its report
    args = ["run", CONFIG, f"runs_dir={tmp_path}", "name=a", "resume=true", *QUIET]
    assert main(args) == 2
    assert "written by another run" in one_error_line(capsys)
    assert not (a / "metrics.json").exists()  # b's results were not written under a's config


def test_a_checkpoint_of_another_architecture_is_one_line(two_runs, tmp_path, capsys):
    from lifelong.training.checkpoint import load_checkpoint, save_checkpoint

    a = tmp_path / "a"
    shutil.copytree(two_runs / "a", a)
    state = load_checkpoint(a / "checkpoint.pt")
    del state["fingerprint"]  # as a checkpoint written before fingerprints
    name = "ffn.layer.query.0.weight"  # PEER's query network: (heads·key_dim, dim)
    state["model"][name] = state["model"][name][:, :3]  # another input width
    save_checkpoint(a / "checkpoint.pt", state)
    assert main(["eval", str(a)]) == 2
    line = one_error_line(capsys)
    assert "does not fit this model" in line and name in line and "(256, 3)" in line


def test_a_moved_run_directory_resumes_in_its_new_place(two_runs, tmp_path, capsys):
    moved = tmp_path / "elsewhere"
    shutil.copytree(two_runs / "a", moved / "a")
    (moved / "a" / "metrics.json").unlink()
    args = ["run", CONFIG, f"runs_dir={moved}", "name=a", "resume=true", *QUIET]
    assert main(args) == 0, capsys.readouterr().err
    rebuilt = json.loads((moved / "a" / "metrics.json").read_text())
    assert rebuilt == json.loads((two_runs / "a" / "metrics.json").read_text())


def test_a_second_run_on_a_locked_directory_exits_2_naming_the_holder(tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path), "busy"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["run", CONFIG, f"runs_dir={tmp_path}", "name=busy", *QUIET]) == 2
        line = one_error_line(capsys)
        assert f"in use by process {holder.pid}" in line
        assert not (tmp_path / "busy").exists()  # nothing written while it is held
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the dead holder's lock: the same command now runs.
    time.sleep(0.1)
    assert main(["run", CONFIG, f"runs_dir={tmp_path}", "name=busy", *QUIET]) == 0


HOLD = """
import sys, time
from pathlib import Path
from lifelong.training.run_lock import run_lock
with run_lock(Path(sys.argv[1]), sys.argv[2]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_run_names_are_plain_folder_names(tmp_path, capsys):
    for name in ("../x", "/abs/x", ".."):
        assert main(["run", CONFIG, f"runs_dir={tmp_path / 'runs'}", f"name={name}"]) == 2
        assert "must be a plain folder name" in one_error_line(capsys)
    (tmp_path / "file").write_text("")
    assert main(["run", CONFIG, f"runs_dir={tmp_path / 'file'}", *QUIET]) == 2
    assert "cannot hold run directories" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]


@pytest.mark.parametrize("damage", ["truncate metrics.json", "delete a png", "delete run.json"])
def test_a_finished_run_with_a_broken_report_rebuilds_it_on_resume(tmp_path, damage, capsys):
    args = ["run", CONFIG, f"runs_dir={tmp_path}", "name=r", "log.tensorboard=false"]
    assert main([*args, "log.progress=false"]) == 0
    run_dir = tmp_path / "r"
    whole = (run_dir / "metrics.json").read_text()
    pngs = sorted(run_dir.glob("*.png"))
    assert pngs
    if damage == "truncate metrics.json":
        (run_dir / "metrics.json").write_text(whole[: len(whole) // 2])
    elif damage == "delete a png":
        pngs[0].unlink()
    else:
        (run_dir / "run.json").unlink()
    capsys.readouterr()
    assert main([*args, "log.progress=false", "resume=true"]) == 0
    out = capsys.readouterr().out
    assert "report is incomplete: rebuilding it" in out and "run finished" in out
    assert (run_dir / "metrics.json").read_text() == whole
    assert sorted(run_dir.glob("*.png")) == pngs
    # Whole again: a further resume has nothing to do.
    assert main([*args, "log.progress=false", "resume=true"]) == 0
    assert "already finished: nothing to do" in capsys.readouterr().out


def test_an_empty_config_yaml_is_named_on_resume(two_runs, tmp_path, capsys):
    shutil.copytree(two_runs / "a", tmp_path / "a")
    (tmp_path / "a" / "config.yaml").write_text("")
    assert main(["run", CONFIG, f"runs_dir={tmp_path}", "name=a", "resume=true", *QUIET]) == 2
    assert "config.yaml' is empty or not a run config" in one_error_line(capsys)


def test_a_refused_resume_leaves_no_events_file(tmp_path, capsys):
    from lifelong.training.checkpoint import load_checkpoint, save_checkpoint

    base = ["run", CONFIG, f"runs_dir={tmp_path}", "name=a", "log.progress=false", "log.png=false"]
    assert main(base) == 0
    run_dir = tmp_path / "a"
    state = load_checkpoint(run_dir / "checkpoint.pt")
    del state["fingerprint"]  # written before fingerprints, by another architecture
    state["model"]["ffn.layer.query.0.weight"] = state["model"]["ffn.layer.query.0.weight"][:, :3]
    save_checkpoint(run_dir / "checkpoint.pt", state)
    (run_dir / "metrics.json").unlink()
    events = sorted(run_dir.glob("events.out.tfevents.*"))
    capsys.readouterr()
    for _ in range(2):
        assert main([*base, "resume=true"]) == 2
        assert "does not fit this model" in one_error_line(capsys)
    assert sorted(run_dir.glob("events.out.tfevents.*")) == events


def _contend(runs: str, barrier, results):
    """Wait for the other process, then try to take the run's lock; hold it a moment."""
    from lifelong.training.errors import RunError
    from lifelong.training.run_lock import run_lock

    barrier.wait()
    try:
        with run_lock(Path(runs), "same"):
            results.put("ran")
            time.sleep(0.3)
    except RunError as err:
        results.put(f"refused: {err}")


def test_two_runs_started_together_exactly_one_proceeds_20_of_20(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for attempt in range(20):
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [
            ctx.Process(target=_contend, args=(str(tmp_path / f"r{attempt}"), barrier, results))
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        outcomes = sorted(results.get(timeout=5) for _ in procs)
        assert outcomes[0] == "ran" and outcomes[1].startswith("refused: run directory"), outcomes


def test_runs_of_a_version_before_a_new_key_still_evaluate_and_resume(two_runs, tmp_path, capsys):
    """A version that adds a key (train.schedule, train.warmup) whose default computes what
    older runs computed keeps their checkpoints and config.yaml usable; a checkpoint of
    another config is still refused, naming the key."""
    import hashlib

    import yaml

    from lifelong.training.checkpoint import load_checkpoint, save_checkpoint
    from lifelong.training.identity import computed_config

    def older(config: dict) -> dict:  # as the version without the keys wrote it
        for key in ("schedule", "warmup"):
            del config["train"][key]
        return config

    a = tmp_path / "a"
    shutil.copytree(two_runs / "a", a)
    state = load_checkpoint(a / "checkpoint.pt")
    old_computed = older(state["fingerprint"]["computed"])
    old_yaml = older(yaml.safe_load((a / "config.yaml").read_text()))
    (a / "config.yaml").write_text(yaml.safe_dump(old_yaml))
    save_checkpoint(a / "checkpoint.pt", state)
    (a / "eval.json").unlink(missing_ok=True)
    assert main(["eval", str(a)]) == 0 and (a / "eval.json").is_file()
    (a / "metrics.json").unlink()  # as if killed before its report
    args = ["run", str(a / "config.yaml"), f"runs_dir={tmp_path}", "resume=true", *QUIET]
    assert main(args) == 0 and (a / "metrics.json").is_file()

    # Checkpoints that carried only a hash of every key (before the config itself).
    text = json.dumps(old_computed, sort_keys=True, default=str)
    state["fingerprint"] = {"config": hashlib.sha256(text.encode()).hexdigest(), "name": "a"}
    save_checkpoint(a / "checkpoint.pt", state)
    assert main(["eval", str(a)]) == 0
    state["fingerprint"]["config"] = hashlib.sha256(b"another config").hexdigest()
    save_checkpoint(a / "checkpoint.pt", state)
    assert main(["eval", str(a)]) == 2
    capsys.readouterr()

    # Another learning rate is another run, whichever version wrote it.
    other = computed_config(load_config(CONFIG, ["train.lr=0.5", "name=a"]))
    state["fingerprint"] = {"config": "f" * 64, "computed": older(other), "name": "x"}
    save_checkpoint(a / "checkpoint.pt", state)
    assert main(["eval", str(a)]) == 2
    assert "first difference: train.lr (run has 0.5, given " in one_error_line(capsys)

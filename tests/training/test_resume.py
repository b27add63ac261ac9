"""Kill-and-resume, in-process interruption under every stateful plugin, determinism,
TensorBoard continuity and `lifelong eval`, each against an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard_views import CustomScalars
from tiny_streams import one_thread

import lifelong.training.run as run_module
from lifelong.config import load_config
from lifelong.training.checkpoint import CHECKPOINT
from lifelong.training.evaluate import evaluate_run
from lifelong.training.run import RunError, run

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "split_digits_task_il_smoke.yaml"
QUIET = ["log.progress=false", "log.png=false", "stream.n_experiences=2"]


def _config(tmp_path, name, *overrides):
    return load_config(SMOKE, [f"name={name}", f"runs_dir={tmp_path}", *QUIET, *overrides])


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


class Interrupt(Exception):
    pass


def _interrupted_run(monkeypatch, cfg, after: int):
    """Run ``cfg`` and raise right after checkpoint number ``after`` is written."""
    real = run_module.save_checkpoint
    written = []

    def save_then_stop(path, state):
        real(path, state)
        written.append(state["finished"])
        if len(written) == after:
            raise Interrupt

    monkeypatch.setattr(run_module, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupt):
        run(cfg)
    monkeypatch.setattr(run_module, "save_checkpoint", real)


METHODS = {  # every kind of state a checkpoint must carry
    "replay+ewc": ["train.strategy=replay", "train.regularizer=ewc"],
    "replay+distill": ["train.strategy=replay", "train.regularizer=distill"],
    "si+moe": ["train.regularizer=si", "model.ffn=moe"],
    "avalanche lwf": ["train.strategy=lwf"],
    "avalanche ewc": ["train.strategy=ewc", "model.freeze_after_first=[shared]"],
    "inferred routing": ["growth.routing=inferred", "model.head=multi"],  # selectors
    "cosine schedule": ["train.schedule=cosine", "train.warmup=0.2"],  # rates per step
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_interrupted_run_resumes_to_identical_metrics(tmp_path, monkeypatch, method):
    overrides = [*METHODS[method], "train.epochs=2", "log.tensorboard=false"]
    reference = run(_config(tmp_path, "reference", *overrides))
    _interrupted_run(monkeypatch, _config(tmp_path, "resumed", *overrides), after=1)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    resumed = run(_config(tmp_path, "resumed", *overrides, "resume=true"))
    assert _metrics(resumed) == _metrics(reference)


def test_a_checkpoint_from_before_a_metric_existed_resumes(tmp_path, monkeypatch):
    """A metric added to the run since the checkpoint was written starts empty on resume
    instead of failing it: here the learning-rate metric, whose state is deleted."""
    from lifelong.training.checkpoint import load_checkpoint, save_checkpoint

    overrides = ["train.epochs=2", "log.tensorboard=false"]
    _interrupted_run(monkeypatch, _config(tmp_path, "old", *overrides), after=1)
    path = tmp_path / "old" / CHECKPOINT
    state = load_checkpoint(path)
    del state["metrics"]["learning_rate"]
    save_checkpoint(path, state)
    resumed = _metrics(run(_config(tmp_path, "old", *overrides, "resume=true")))
    reference = _metrics(run(_config(tmp_path, "reference", *overrides)))
    assert resumed["learning_rate"] == reference["learning_rate"][1:]  # the second only
    assert resumed["accuracy_matrix"] == reference["accuracy_matrix"]


def test_two_seeded_runs_write_identical_metrics(tmp_path):
    a = run(_config(tmp_path, "a", "train.epochs=2", "log.tensorboard=false"))
    b = run(_config(tmp_path, "b", "train.epochs=2", "log.tensorboard=false"))
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()
    other = run(_config(tmp_path, "c", "train.epochs=2", "log.tensorboard=false", "seed=1"))
    assert _metrics(other) != _metrics(a)  # the seed does reach the result


def test_resume_refuses_a_different_config(tmp_path, monkeypatch):
    _interrupted_run(monkeypatch, _config(tmp_path, "r", "log.tensorboard=false"), after=1)
    with pytest.raises(RunError, match=r"differs .* train\.epochs"):
        run(_config(tmp_path, "r", "log.tensorboard=false", "resume=true", "train.epochs=3"))


def _scalar_steps(run_dir: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _next_second():
    """TensorBoard reads a directory's event files in name order, and a name starts with
    the second it was created in; within one second a per-process counter decides, as text
    ('10' < '9'). A resumed process starts seconds later; one in-process run must wait."""
    time.sleep(1.01 - time.time() % 1.0)


def test_tensorboard_curves_continue_without_duplicates(tmp_path, monkeypatch):
    cfg = ["train.epochs=1", "stream.n_experiences=5"]
    reference = _scalar_steps(run(_config(tmp_path, "reference", *cfg)))
    # Interrupted after the second checkpoint: the curves of experiences 0-1 exist.
    _interrupted_run(monkeypatch, _config(tmp_path, "resumed", *cfg), after=2)
    # Fake what a kill mid-evaluation leaves behind: points past the checkpoint (x = 3).
    from torch.utils.tensorboard import SummaryWriter

    _next_second()
    with SummaryWriter(tmp_path / "resumed") as stale:
        stale.add_scalar("lifelong/Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000", 0.0, 3)
    _next_second()
    resumed = _scalar_steps(run(_config(tmp_path, "resumed", *cfg, "resume=true")))
    assert resumed == reference
    curve = reference["lifelong/Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000"]
    assert curve == [0, 1, 2, 3, 4, 5]  # initial evaluation, then after each experience
    # Each session wrote the custom-scalars layout at step 0, below the purge step: the
    # dashboard shows it once, as for the uninterrupted run.
    charts = CustomScalars(tmp_path / "resumed").charts()
    assert charts and charts == CustomScalars(tmp_path / "reference").charts()


def test_eval_reproduces_the_last_matrix_row(tmp_path):
    run_dir = run(_config(tmp_path, "e", "train.epochs=2", "log.tensorboard=false"))
    result = evaluate_run(run_dir)
    assert result["per_experience"] == pytest.approx(_metrics(run_dir)["accuracy_matrix"][-1])
    assert json.loads((run_dir / "eval.json").read_text()) == result


EPOCHS = "train.epochs=20"  # experience 1 takes seconds: a kill lands inside it


def _cli(tmp_path, name, *extra) -> subprocess.Popen:
    args = [str(SMOKE), f"name={name}", f"runs_dir={tmp_path}", *QUIET, EPOCHS, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "lifelong.cli", "run", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_mid_experience_then_resume_equals_uninterrupted(tmp_path):
    """A real process is killed with SIGKILL in experience 1; the reference and the resumed
    run go in-process (one thread, as the killed one), which spares two interpreter starts
    of Avalanche's seconds-long import."""
    victim = _cli(tmp_path, "victim", "train.strategy=replay")
    with one_thread():  # while the victim starts up
        reference = run(_config(tmp_path, "reference", EPOCHS, "train.strategy=replay"))
    checkpoint = tmp_path / "victim" / CHECKPOINT
    deadline = time.time() + 300
    while not checkpoint.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # into experience 1, whose 20 epochs take seconds
    victim.send_signal(signal.SIGKILL)
    _, err = victim.communicate()
    assert victim.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert not (tmp_path / "victim" / "metrics.json").exists(), "killed too late to test"
    state = torch.load(checkpoint, weights_only=True)
    assert state["finished"] == 1
    with one_thread():
        resumed = run(_config(tmp_path, "victim", EPOCHS, "train.strategy=replay", "resume=true"))
    assert _metrics(resumed) == _metrics(reference)
    info = json.loads((resumed / "run.json").read_text())
    assert info["resumed_from"] == 1


def test_eval_of_the_train_split_and_a_bad_split(tmp_path, capsys):
    from lifelong.cli import main

    run_dir = run(_config(tmp_path, "t", "train.epochs=2", "log.tensorboard=false"))
    test = evaluate_run(run_dir)
    train = evaluate_run(run_dir, ["stream=train"])
    assert train["split"] == "train" and test["split"] == "test"
    assert json.loads((run_dir / "eval_train.json").read_text()) == train
    assert json.loads((run_dir / "eval.json").read_text()) == test  # not overwritten
    # Other samples of the same tasks: a different figure on each experience it trained.
    assert train["per_experience"] != test["per_experience"]
    assert len(train["per_experience"]) == len(test["per_experience"]) == 2
    assert main(["eval", str(run_dir), "stream=valid"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lifelong: error: stream=valid is not a split; pass stream=test or stream=train"]
    # A stream with tasks the run never had (2 -> 5 task labels): their heads are not in
    # the checkpoint, which says so in one line and writes nothing.
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["eval", str(run_dir), "stream.n_experiences=5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "it has no 'head.heads.2.weight'" in err[0], err
    assert err[0].endswith("on another stream, evaluate one with the run's tasks")
    assert sorted(p.name for p in run_dir.iterdir()) == before

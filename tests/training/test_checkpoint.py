"""Checkpoint files: atomic, weights-only, and a pickled payload never runs."""

import pickle
import random
import sys

import numpy as np
import pytest
import torch

from lifelong.cli import main
from lifelong.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

MARK = "lifelong_test_payload_ran"


class Payload:
    """Unpickling this runs exec(...), which sets sys.<MARK>: code a loader must never run."""

    def __reduce__(self):
        return (exec, (f"import sys; sys.{MARK} = True",))


def test_pickled_payload_is_refused_and_never_runs(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "finished": 1, "model": Payload()}, path)
    # The oracle: plain pickle does run it, so the file really carries the payload.
    pickle.loads(pickle.dumps(Payload()))
    assert getattr(sys, MARK)
    delattr(sys, MARK)
    with pytest.raises(CheckpointError, match="pickled object"):
        load_checkpoint(path)
    assert not hasattr(sys, MARK)


def test_eval_of_a_run_with_a_pickled_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("stream: {kind: split_digits}\n")
    torch.save({"format": 1, "finished": 1, "model": Payload()}, run_dir / "checkpoint.pt")
    assert main(["eval", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pickled object" in err[0]
    assert not hasattr(sys, MARK)


def test_round_trip_keeps_tensors_and_containers(tmp_path):
    state = {"model": {"w": torch.randn(3, 2)}, "rows": {0: {1: 0.5}}, "names": ("a", None)}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["rows"] == {0: {1: 0.5}} and back["names"] == ("a", None)


def test_failed_write_leaves_the_previous_checkpoint_whole(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"finished": 1})
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises
        save_checkpoint(path, {"finished": 2, "bad": lambda: 0})  # fails mid-write
    assert load_checkpoint(path)["finished"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


def test_a_foreign_file_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a lifelong checkpoint"):
        load_checkpoint(path)


def test_rng_state_round_trip_replays_every_generator(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"rng": rng_state()})
    first = (random.random(), np.random.rand(), torch.rand(()).item())
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(()).item()) == first


def test_empty_and_random_files_are_refused_with_their_reason(tmp_path):
    empty, noise = tmp_path / "empty.pt", tmp_path / "noise.pt"
    empty.write_bytes(b"")
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\)"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match="not a torch archive") as err:
        load_checkpoint(noise)
    assert "weights_only" not in str(err.value)  # never the advice to load unsafely


def test_a_pickled_global_names_what_it_is_and_never_suggests_unsafe_loading(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"format": 1, "call": print}, path)  # a pickled function
    with pytest.raises(CheckpointError, match="carries a pickled object") as err:
        load_checkpoint(path)
    assert "print" in str(err.value) and "weights_only" not in str(err.value)

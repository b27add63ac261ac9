"""`dist.shard_experts=true` under torchrun: two gloo ranks each holding half of PEER's
expert rows compute what one process holding all of them computes, checkpoint their own
rows, resume after a kill, and `lifelong eval` puts the tables back together."""

import json
import os
import signal
import subprocess
import time

import torch
from launch import (
    LAUNCH_TIMEOUT_S,
    TEXT,
    environment,
    numeric_differences,
    one_process,
    two_ranks,
)

from lifelong.training.checkpoint import CHECKPOINT, load_checkpoint
from lifelong.training.evaluate import evaluate_run
from lifelong.training.shards import one_process_state, shard_path

SHARDED = "dist.shard_experts=true"


def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_two_ranks_with_half_the_experts_each_compute_what_one_process_computes(tmp_path):
    oracle = one_process(TEXT, tmp_path, "one", SHARDED)  # one process holds every row
    launched = subprocess.run(
        two_ranks(TEXT, tmp_path, "two", SHARDED),
        capture_output=True,
        env=environment(),
        timeout=LAUNCH_TIMEOUT_S,
    )
    assert launched.returncode == 0, launched.stderr.decode()[-3000:]
    two = tmp_path / "two"
    assert numeric_differences(oracle, metrics(two)) == []

    # Rank 0's checkpoint holds its rows, rank 1's shard file the others: half each, and
    # together the one-process tables.
    whole = load_checkpoint(tmp_path / "one" / CHECKPOINT)["model"]
    main = load_checkpoint(two / CHECKPOINT)
    finished = len(oracle["experience_names"])
    shard = load_checkpoint(shard_path(two, 1, finished))["model"]
    assert shard and {n for n in shard if ".down." in n or ".up." in n} == set(shard)
    for name, rows in shard.items():
        assert rows.shape[0] + main["model"][name].shape[0] == whole[name].shape[0]
        assert abs(rows.shape[0] - main["model"][name].shape[0]) <= 1
    joined = one_process_state(main, two)["model"]
    for name in shard:
        # Sums over two ranks add in another order than over one batch; Adam's division by
        # √v turns that into up to ~3e-4 on the odd row whose second moment is tiny.
        torch.testing.assert_close(joined[name], whole[name], rtol=0, atol=1e-3)
    assert list((two / "shards").iterdir()) == [shard_path(two, 1, finished)]  # older: gone

    # lifelong eval, in one process, on the reassembled tables.
    one_eval, two_eval = evaluate_run(tmp_path / "one"), evaluate_run(two)
    assert numeric_differences(one_eval["per_experience"], two_eval["per_experience"]) == []


def test_a_killed_sharded_run_resumes_to_the_same_metrics(tmp_path):
    oracle = one_process(TEXT, tmp_path, "one", SHARDED)
    command = two_ranks(TEXT, tmp_path, "killed", SHARDED)
    env = environment()
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    checkpoint, lock = tmp_path / "killed" / CHECKPOINT, tmp_path / ".killed.lock"
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not checkpoint.exists():  # experience 1 committed, with rank 1's shard
        assert launcher.poll() is None, launcher.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(int(lock.read_text()), signal.SIGKILL)  # rank 0
    launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    assert not (tmp_path / "killed" / "metrics.json").exists(), "killed after the run ended"

    resumed = subprocess.run(
        [*command, "resume=true"], capture_output=True, env=env, timeout=LAUNCH_TIMEOUT_S
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    assert "resuming after experience" in resumed.stdout.decode()
    assert numeric_differences(oracle, metrics(tmp_path / "killed")) == []

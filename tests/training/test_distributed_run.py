"""Data-parallel `lifelong run` under torchrun: two gloo ranks on the CPU, launched as a
user would (``python -m torch.distributed.run --nproc_per_node=2 -m lifelong run ...``),
against the oracle of one process on the same global batch (an ordinary run, no process
group): the same metrics.json, both ranks holding the same model and optimizer state after
every experience, and a rank killed mid-run that the same command with resume=true
completes to the same metrics."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from launch import (
    DIGITS,
    LAUNCH_TIMEOUT_S,
    QUIET,
    TEXT,
    environment,
    numeric_differences,
    one_process,
    two_ranks,
)

from lifelong.config import ConfigError, load_config
from lifelong.experiment import build_experiment
from lifelong.parallel import row_slice
from lifelong.training.checkpoint import CHECKPOINT
from lifelong.training.distributed import check_data_parallel


def digests_by_rank(folder: Path) -> dict[int, list[dict]]:
    return {
        int(p.stem.removeprefix("rank")): [json.loads(line) for line in p.read_text().splitlines()]
        for p in sorted(folder.glob("rank*.jsonl"))
    }


@pytest.mark.parametrize("config", [DIGITS, TEXT], ids=["split_digits", "text_domains"])
def test_two_ranks_compute_what_one_process_computes(config, tmp_path):
    oracle = one_process(config, tmp_path, "one")
    digests = tmp_path / "digests"
    launched = subprocess.run(
        two_ranks(config, tmp_path, "two"),
        capture_output=True,
        env=environment(digests),
        timeout=LAUNCH_TIMEOUT_S,
    )
    assert launched.returncode == 0, launched.stderr.decode()[-3000:]
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert numeric_differences(oracle, two) == []
    # The ranks hold the same weights, buffers (router mass, BatchNorm statistics) and
    # LazyAdamW state, bit for bit, after every experience.
    ranks = digests_by_rank(digests)
    experiences = len(oracle["experience_names"])
    assert sorted(ranks) == [0, 1]
    assert [d["finished"] for d in ranks[0]] == list(range(1, experiences + 1))
    assert ranks[0] == ranks[1]
    # Rank 0 alone wrote the run directory and printed the results.
    assert launched.stdout.decode().count("run finished") == 1


def test_a_killed_rank_stops_every_rank_and_resume_completes_the_run(tmp_path):
    oracle = one_process(DIGITS, tmp_path, "one")
    command = two_ranks(DIGITS, tmp_path, "killed")
    env = environment()
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    checkpoint, lock = tmp_path / "killed" / CHECKPOINT, tmp_path / ".killed.lock"
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not checkpoint.exists():  # the first experience is saved: the run is under way
        assert launcher.poll() is None, launcher.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    writer = int(lock.read_text())  # rank 0 holds the run lock and writes its PID there
    os.kill(writer, signal.SIGKILL)
    # Rank 1 notices at its next collective, and torchrun stops: nobody waits forever.
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    assert not (tmp_path / "killed" / "metrics.json").exists(), "killed after the run ended"
    assert "lost the other ranks" in stderr.decode() or "SIGKILL" in stderr.decode()

    resumed = subprocess.run(
        [*command, "resume=true"], capture_output=True, env=env, timeout=LAUNCH_TIMEOUT_S
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    assert "resuming after experience" in resumed.stdout.decode()
    metrics = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert numeric_differences(oracle, metrics) == []


def test_a_refused_launch_says_why_once(tmp_path):
    launched = subprocess.run(
        two_ranks(DIGITS, tmp_path, "odd", "train.batch_size=33"),
        capture_output=True,
        env=environment(),
        timeout=LAUNCH_TIMEOUT_S,
    )
    errors = [line for line in launched.stderr.decode().splitlines() if "lifelong: error" in line]
    assert launched.returncode != 0
    assert errors == [
        "lifelong: error: train.batch_size=33 (the global batch) does not split over 2 ranks; "
        "choose a multiple of 2"
    ]
    assert not (tmp_path / "odd").exists()


# In one process: what splitting a batch means, and what a data-parallel run refuses.


@pytest.mark.parametrize("rows", [1, 2, 3, 31, 32, 33])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_row_slices_cover_the_batch_once_in_order(rows, world):
    slices = [row_slice(rows, r, world) for r in range(world)]
    assert slices[0][0] == 0 and slices[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:], strict=False))
    sizes = [hi - lo for lo, hi in slices]
    assert max(sizes) - min(sizes) <= 1


REFUSED = {  # overrides -> words of the one-line refusal on 2 ranks
    "batch of 33": (["train.batch_size=33"], "does not split over 2 ranks"),
    "token-choice MoE": (["model.ffn=moe"], "model.ffn=moe routes with statistics"),
    "expert-choice MoE": (["model.ffn=expert_choice"], "model.ffn=expert_choice routes"),
    "Avalanche EWC": (["train.strategy=ewc"], "EWCPlugin does not support distributed"),
    "Avalanche LwF": (["train.strategy=lwf"], "LwFPlugin does not support distributed"),
    # 291 training samples in the first experience: a last batch of 1 row for 2 ranks
    "last batch of 1": (["train.batch_size=10"], "ends with a batch of 1 rows"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_data_parallelism_would_change_is_refused(case, tmp_path):
    overrides, words = REFUSED[case]
    cfg = load_config(DIGITS, [f"runs_dir={tmp_path}", *QUIET, *overrides])
    with pytest.raises(ConfigError, match=words):
        check_data_parallel(cfg, build_experiment(cfg, metrics=False), 2)


def test_what_data_parallelism_keeps_is_accepted(tmp_path):
    for overrides in (
        [],
        ["train.strategy=replay", "train.regularizer=ewc"],
        ["train.regularizer=distill", "model.ffn=pkm"],
        ["growth.routing=inferred", "model.head=multi", "growth.init=upcycle"],
    ):
        cfg = load_config(DIGITS, [f"runs_dir={tmp_path}", *QUIET, *overrides])
        check_data_parallel(cfg, build_experiment(cfg, metrics=False), 2)

"""The console: the results table, experience lines, and no carriage returns in a log."""

import subprocess
import sys
from pathlib import Path

from lifelong.training.console import results_table
from lifelong.training.evaluate import eval_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_results_table_forgetting_is_the_drop_from_the_best_earlier_score():
    # Rows: after each training experience; R[0][1] = 0.95 is b before it was trained.
    matrix = [[0.9, 0.95, 0.1], [0.7, 0.8, 0.1], [0.6, 0.85, 0.5]]
    table = results_table(
        ["a", "b", "c"],
        matrix[-1],
        metric="accuracy",
        matrix=matrix,
        summary={"average": 0.65, "BWT": None},
    ).splitlines()
    assert table[0].split() == ["experience", "accuracy", "forgetting"]
    assert table[1].split() == ["a", "0.6000", "0.3000"]  # best earlier 0.9
    assert table[2].split() == ["b", "0.8500", "-0.0500"]  # improved: negative forgetting
    assert table[3].split() == ["c", "0.5000", "-"]  # trained last: nothing to forget
    assert table[4] == "average 0.6500"  # None values are left out
    lm = results_table(
        ["x", "y"], [12.0, 9.0], metric="perplexity", matrix=[[10.0, None], [12.0, 9.0]]
    )
    assert lm.splitlines()[1].split() == ["x", "12.0000", "2.0000"]  # perplexity: a rise


def test_eval_files_are_named_by_the_changed_stream_options():
    assert eval_file("test", {}) == "eval.json" and eval_file("train", {}) == "eval_train.json"
    assert eval_file("test", {"seed": 1}) == "eval_seed-1.json"
    assert eval_file("train", {"paths": ["/a b/c"]}) == "eval_train_paths-_a_b_c_.json"


def test_a_redirected_run_logs_lines_and_ends_with_the_results_table(tmp_path):
    config = str(CONFIGS / "split_digits_task_il_smoke.yaml")
    args = [sys.executable, "-m", "lifelong", "run", config, f"runs_dir={tmp_path}", "name=r"]
    out = subprocess.run([*args, "log.tensorboard=false", "log.png=false"], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    stdout = out.stdout.decode()
    assert "\r" not in stdout and "\r" not in out.stderr.decode()
    lines = stdout.splitlines()
    announced = [line.split(":")[0] for line in lines if line.startswith("experience ")]
    assert announced[:5] == [f"experience {i}/5" for i in range(1, 6)]
    header = lines.index(
        next(line for line in lines if line.split()[:2] == ["experience", "accuracy"])
    )
    assert lines[header + 6].startswith("average ") and "BWT" in lines[header + 6]
    assert lines[-2].startswith("run finished: ")
    # Resumed when already finished: nothing to do, the same table, and no run repeated.
    again = subprocess.run(
        [*args, "log.tensorboard=false", "log.png=false", "resume=true"], capture_output=True
    )
    assert again.returncode == 0 and "average " in again.stdout.decode()

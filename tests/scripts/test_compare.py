"""scripts/compare.py: the paired statistics against hand-computed values, the plan that
fixes a comparison's rule before its runs, and one tiny comparison end to end."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("compare", ROOT / "scripts/compare.py")
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def test_the_sign_test_is_the_exact_binomial_tail():
    # Two-sided: 2 · P(X <= min) under Binomial(n, 1/2), by hand.
    assert compare.sign_test(8, 0) == pytest.approx(2 / 256)
    assert compare.sign_test(2, 6) == pytest.approx(2 * (1 + 8 + 28) / 256)
    assert compare.sign_test(3, 3) == 1.0 and compare.sign_test(0, 0) == 1.0


def _records(arm, values, rows, lower=True):
    return [
        {
            "arm": arm,
            "seed": s,
            "headline": v,
            "final_row": row,
            "names": ["a", "b"],
            "lower_is_better": lower,
        }
        for s, (v, row) in enumerate(zip(values, rows, strict=True))
    ]


def test_a_paired_comparison_counts_wins_and_applies_both_halves_of_the_rule():
    base = _records("config", [10.0, 20.0, 30.0, 40.0], [[1, 5], [2, 5], [3, 5], [4, 5]])
    # Lower perplexity is better: seeds 0, 1, 2 won, seed 3 lost; mean 24.5 against 25.
    cand = _records("x=1", [9.0, 19.0, 29.0, 41.0], [[0, 6], [1, 6], [4, 6], [3, 6]])
    r = compare.compare(base + cand, "x=1", margin=0.02, wins_needed=3)
    assert (r["wins"], r["losses"]) == (3, 1)
    assert r["relative_gain"] == pytest.approx(0.5 / 25)
    assert r["adopted"]  # 2 % exactly, and 3 of 4
    assert r["mean_std"]["candidate"][0] == pytest.approx(24.5)
    assert [e["wins"] for e in r["per_experience"]] == [3, 0]
    assert r["sign_test_p"] == pytest.approx(2 * (1 + 4) / 16)
    assert not compare.compare(base + cand, "x=1", margin=0.021, wins_needed=3)["adopted"]
    assert not compare.compare(base + cand, "x=1", margin=0.02, wins_needed=4)["adopted"]
    # Higher accuracy is better: the same numbers lose.
    flipped = [dict(rec, lower_is_better=False) for rec in base + cand]
    r = compare.compare(flipped, "x=1", margin=0.0, wins_needed=1)
    assert (r["wins"], r["losses"], r["adopted"]) == (1, 3, False)
    assert r["relative_gain"] == pytest.approx(-0.02)


def test_seeds_candidates_and_plans_are_checked(tmp_path):
    assert compare.parse_seeds(["36-38", "1", "37"]) == [1, 36, 37, 38]
    for bad in (["3-1"], ["x"]):
        with pytest.raises(ValueError, match="--seeds"):
            compare.parse_seeds(bad)
    assert compare.arms_of(["a=1 b=2"]) == {"config": [], "a=1 b=2": ["a=1", "b=2"]}
    assert compare.slug("a=1 b=2") == "a=1+b=2"
    # Names a folder cannot hold, or too long for one, stay distinct through a hash.
    assert compare.slug("x=[0,1]") != compare.slug("x=[0_1]")
    assert "/" not in compare.slug("imports=[a/b]")
    assert len(compare.slug("k=" + "9" * 200)) < 80
    with pytest.raises(ValueError, match="key=value"):
        compare.arms_of(["batch16"])
    with pytest.raises(ValueError, match="nothing to compare"):
        compare.arms_of([])
    plan = {"arms": {"config": []}, "rule": {"margin": 0.02, "wins": 6}}
    compare.fix_plan(tmp_path, plan)
    compare.fix_plan(tmp_path, plan)  # the same plan again: resumes
    with pytest.raises(ValueError, match="differs in rule"):
        compare.fix_plan(tmp_path, {**plan, "rule": {"margin": 0.01, "wins": 6}})
    assert json.loads((tmp_path / "plan.json").read_text()) == plan


def test_a_tiny_comparison_reports_its_runs_and_resumes_them(tmp_path, capsys):
    argv = [
        str(ROOT / "configs/split_digits_class_il_smoke.yaml"),
        "--candidate", "train.lr=0.01",
        "--seeds", "0-1",
        "--set", "log.tensorboard=false", "log.png=false",
        "--runs-dir", str(tmp_path / "cmp"),
        "--json", str(tmp_path / "cmp.json"),
        "--png", str(tmp_path / "slopes.png"),
    ]  # fmt: skip
    assert compare.main(argv) == 0
    result = json.loads((tmp_path / "cmp.json").read_text())["results"][0]
    for arm, key in (("config", "config"), ("train.lr=0.01", "values")):
        for seed, value in zip((0, 1), result[key], strict=True):
            run = tmp_path / "cmp" / f"{compare.slug(arm)}-{seed}" / "metrics.json"
            assert json.loads(run.read_text())["average_accuracy"] == value
    assert result["config"] != result["values"]
    out = capsys.readouterr().out
    table = out[out.index("## train.lr=0.01") :]  # after any log lines of the runs
    assert "| the config |" in table and "Rule: at least 2 % better" in table
    assert (tmp_path / "slopes.png").read_bytes()[:4] == b"\x89PNG"
    # Again: every run is reused, and the same table comes out.
    assert compare.main(argv) == 0 and capsys.readouterr().out.endswith(table)
    # Another plan in the same folder is refused in one line, with nothing run.
    assert compare.main([*argv[:2], "train.lr=0.02", *argv[3:-2]]) == 2
    assert "another plan" in capsys.readouterr().err
    assert not any("0.02" in p.name for p in (tmp_path / "cmp").iterdir())

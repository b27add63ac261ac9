"""Compare a config with candidate changes on the same seeds, by a rule fixed before the runs.

    OMP_NUM_THREADS=1 python scripts/compare.py configs/text_domains_no_labels.yaml \\
        --candidate train.batch_size=16 --candidate "train.batch_size=8 train.lr=0.003" \\
        --seeds 36-43 --set stream.validation=true --margin 0.02 --wins 6 --jobs 2

Every arm (the config as it is, and the config with each candidate's overrides) is run at
every seed, with the overrides of ``--set`` on all of them; each pair of runs at one seed
shares its stream and initialisation, so the comparison is paired. A candidate is
**adopted** only if its mean headline (perplexity, lower is better; accuracy, higher) is
better than the config's by at least ``--margin`` (relative) *and* better at ``--wins``
seeds or more. Asking for both guards against the two ways a few seeds mislead: one
outlying seed moving the mean, and many seeds moving by less than the noise.

The rule is written to ``<runs-dir>/plan.json`` before the first run, with the arms and
seeds; a later call on the same folder with another plan is refused, so a rule cannot be
moved after its results are seen (start a new folder for a new plan). Runs already
finished are reused and interrupted ones resumed (``resume=true``), so a comparison that
was stopped continues where it was.

Prints a markdown table per candidate (per-seed headline, mean ± std, how many seeds it
wins, the exact two-sided sign-test p-value, each experience's final score) and the
verdict; ``--json`` writes the same as data, ``--png`` a slope chart per candidate (each
seed a line from the config's score to the candidate's, green where it is better). Choose
on validation data (``stream.validation=true`` for the text and digit streams), never on
the test files.
"""

import argparse
import hashlib
import json
import math
import re
import statistics
import sys
import warnings
from pathlib import Path

from lifelong.atomic import atomic_write_text

BASELINE = "config"


def parse_seeds(items: list[str]) -> list[int]:
    """``["36-43"]`` or ``["0", "1", "5"]`` -> sorted, distinct ints."""
    seeds = set()
    for item in items:
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m or (m[2] is not None and int(m[2]) < int(m[1])):
            raise ValueError(f"--seeds {item!r}: give seeds as 3 or a range 36-43")
        seeds.update(range(int(m[1]), int(m[2] or m[1]) + 1))
    return sorted(seeds)


def arms_of(candidates: list[str]) -> dict[str, list[str]]:
    """{arm name: its overrides}: the config first, then each candidate (a space-separated
    string of key=value overrides, which is also its name)."""
    arms = {BASELINE: []}
    for text in candidates:
        overrides = text.split()
        bad = [o for o in overrides if "=" not in o]
        if not overrides or bad:
            raise ValueError(
                f"--candidate {text!r}: give key=value overrides, e.g. train.batch_size=16"
            )
        name = " ".join(overrides)
        if name in arms:
            raise ValueError(f"--candidate {text!r} is given twice")
        arms[name] = overrides
    if len(arms) == 1:
        raise ValueError("nothing to compare: give at least one --candidate key=value")
    return arms


def slug(name: str) -> str:
    """A run-directory name for an arm: its overrides where they make a safe, short name,
    else a shortened form made distinct by a hash of the whole."""
    plain = name.replace(" ", "+")
    clean = re.sub(r"[^A-Za-z0-9_+.=-]+", "_", plain)
    if clean == plain and len(clean) <= 80:
        return clean
    return f"{clean[:60]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def fix_plan(runs_dir: Path, plan: dict) -> None:
    """Write ``plan`` to runs_dir/plan.json, or check that the folder was planned so."""
    path = runs_dir / "plan.json"
    if path.is_file():
        earlier = json.loads(path.read_text())
        if earlier != plan:
            changed = sorted(
                k for k in plan.keys() | earlier.keys() if plan.get(k) != earlier.get(k)
            )
            raise ValueError(
                f"{path} fixed another plan (it differs in {', '.join(changed)}); a "
                f"comparison's arms, seeds and rule are fixed before its runs: give a new "
                f"--runs-dir for a new plan"
            )
        return
    runs_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(plan, indent=2) + "\n")


def run_one(task: tuple) -> dict:
    """(config path, overrides, arm, seed) -> {"arm", "seed", "headline", "final_row",
    "names", "lower_is_better"} of the finished run."""
    from lifelong.config import load_config
    from lifelong.training.run import run

    config, overrides, arm, seed = task
    run_dir = run(load_config(config, overrides))
    return {
        "arm": arm,
        "seed": seed,
        **headline(json.loads((run_dir / "metrics.json").read_text())),
    }


def headline(metrics: dict) -> dict:
    """The figure a run is judged by, from its metrics.json (the headline ``lifelong run``
    prints: perplexity for a language model, else the average accuracy), and the last row
    of its matrix."""
    from lifelong.training.console import run_headline

    metric, value, matrix = run_headline(metrics)
    return {
        "headline": value,
        "final_row": matrix[-1],
        "names": metrics["experience_names"],
        "lower_is_better": metric == "perplexity",
    }


def tasks_of(config: str, common: list[str], arms: dict, seeds: list[int], runs_dir: Path):
    quiet = ["log.progress=false", "resume=true", f"runs_dir={runs_dir}"]
    return [
        (config, [*common, *overrides, *quiet, f"seed={s}", f"name={slug(arm)}-{s}"], arm, s)
        for arm, overrides in arms.items()
        for s in seeds
    ]


def run_all(tasks: list[tuple], jobs: int):
    """Yield ``run_one(task)`` as the runs finish; ``jobs`` at once in forked processes."""
    if jobs <= 1:
        yield from map(run_one, tasks)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        yield from (f.result() for f in as_completed([pool.submit(run_one, t) for t in tasks]))


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign-test p-value of ``wins`` against ``losses`` (ties dropped):
    the probability, under a fair coin, of a split at least as uneven."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(records: list[dict], arm: str, *, margin: float, wins_needed: int) -> dict:
    """The candidate ``arm`` against the config over the seeds both finished."""
    by = {(r["arm"], r["seed"]): r for r in records}
    seeds = sorted(s for a, s in by if a == arm and (BASELINE, s) in by)
    base = [by[BASELINE, s] for s in seeds]
    cand = [by[arm, s] for s in seeds]
    sign = -1.0 if base[0]["lower_is_better"] else 1.0  # > 0: the candidate is better

    def better(c: float, b: float) -> bool:
        return sign * (c - b) > 0

    pairs = list(zip(cand, base, strict=True))  # (candidate, config) at one seed
    wins = sum(better(c["headline"], b["headline"]) for c, b in pairs)
    losses = sum(better(b["headline"], c["headline"]) for c, b in pairs)
    mean_std = {"config": _mean_std(base), "candidate": _mean_std(cand)}
    mean_b, mean_c = mean_std["config"][0], mean_std["candidate"][0]
    gain = sign * (mean_c - mean_b) / abs(mean_b)  # relative, > 0 better
    names = base[0]["names"]
    if any(r["names"] != names for r in base):  # e.g. a class order drawn per seed
        names = [f"experience {j + 1}" for j in range(len(names))]
    per_experience = [
        {
            "name": name,
            "config": [b["final_row"][j] for b in base],
            "candidate": [c["final_row"][j] for c in cand],
            "wins": sum(better(c["final_row"][j], b["final_row"][j]) for c, b in pairs),
        }
        for j, name in enumerate(names)
    ]
    return {
        "candidate": arm,
        "seeds": seeds,
        "config": [r["headline"] for r in base],
        "values": [r["headline"] for r in cand],
        "mean_std": mean_std,
        "lower_is_better": base[0]["lower_is_better"],
        "rule": {"margin": margin, "wins": wins_needed},
        "relative_gain": gain,
        "wins": wins,
        "losses": losses,
        "sign_test_p": sign_test(wins, losses),
        "per_experience": per_experience,
        "adopted": gain >= margin and wins >= wins_needed,
    }


def _mean_std(rows: list[dict]) -> list[float]:
    values = [r["headline"] for r in rows]
    return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0]


def markdown(result: dict) -> str:
    """The comparison as a markdown table, each experience's range and the verdict."""
    seeds, n = result["seeds"], len(result["seeds"])
    lower_is_better, rule = result["lower_is_better"], result["rule"]
    fmt = "{:.2f}".format if lower_is_better else "{:.3f}".format  # perplexity, accuracy

    def span(values: list[float]) -> str:
        lo, hi = min(values), max(values)
        return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"

    lines = ["| " + " | ".join(["", *map(str, seeds), "mean ± std", "better at"]) + " |"]
    lines.append("|" + "---|" * (n + 3))
    for label, values, (mean, std), won in (
        ("the config", result["config"], result["mean_std"]["config"], "–"),
        (
            result["candidate"],
            result["values"],
            result["mean_std"]["candidate"],
            f"{result['wins']} of {n}",
        ),
    ):
        cells = [*map(fmt, values), f"{fmt(mean)} ± {fmt(std)}", won]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for e in result["per_experience"]:
        lines.append(
            f"- {e['name']}: {span(e['candidate'])} against {span(e['config'])}, "
            f"better at {e['wins']} of {n}"
        )
    verdict = "ADOPTED" if result["adopted"] else "rejected"
    metric = "perplexity" if lower_is_better else "accuracy"
    lines.append(
        f"\n{metric}: {100 * result['relative_gain']:+.1f} % (+ is better), sign test p = "
        f"{result['sign_test_p']:.3f}. Rule: at least {100 * rule['margin']:g} % better and "
        f"better at {rule['wins']} of {n} seeds: **{verdict}**."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("config", help="a config file or the name of a shipped one")
    p.add_argument("--candidate", action="append", default=[], metavar="'KEY=VALUE ...'")
    p.add_argument("--seeds", nargs="+", default=["0-7"], help="e.g. 36-43, or 0 1 2")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="on every run")
    p.add_argument("--margin", type=float, default=0.02, help="relative gain needed (0.02)")
    p.add_argument("--wins", type=int, help="seeds the candidate must win (default: 3/4)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (forked processes)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/compare"))
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--png", type=Path, help="a slope chart per candidate: PATH, PATH-2, ...")
    args = p.parse_args(argv)
    # As the CLI: Avalanche's import warns of a QP solver only GEM would use.
    warnings.filterwarnings("ignore", message="no QP solver found", category=UserWarning)
    try:
        return _main(args)
    except KeyboardInterrupt:  # finished runs are kept; the same command goes on from them
        print("compare: interrupted; the same command resumes it", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:  # one readable line, as the CLI gives
        print(f"compare: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2


def _main(args) -> int:
    from lifelong.cli import resolve_config
    from lifelong.config import load_config

    seeds = parse_seeds(args.seeds)
    arms = arms_of(args.candidate)
    wins = args.wins if args.wins is not None else math.ceil(0.75 * len(seeds))
    if not 0 < wins <= len(seeds):
        raise ValueError(f"--wins {wins}: it must be between 1 and the {len(seeds)} seeds")
    config = str(Path(resolve_config(args.config)).resolve())
    for overrides in arms.values():  # a bad key fails now, not after hours of runs
        load_config(config, [*args.set, *overrides])
    plan = {
        "config": config,
        "set": args.set,
        "arms": arms,
        "seeds": seeds,
        "rule": {"margin": args.margin, "wins": wins},
    }
    fix_plan(args.runs_dir, plan)
    tasks = tasks_of(config, args.set, arms, seeds, args.runs_dir.resolve())
    records = []
    for i, rec in enumerate(run_all(tasks, args.jobs), 1):
        records.append(rec)
        print(
            f"[{i}/{len(tasks)}] {rec['arm']} seed {rec['seed']}: {rec['headline']:.4g}",
            file=sys.stderr,
            flush=True,
        )
    results = [
        compare(records, arm, margin=args.margin, wins_needed=wins)
        for arm in arms
        if arm != BASELINE
    ]
    for result in results:
        print(f"\n## {result['candidate']}\n")
        print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps({"plan": plan, "results": results}, indent=2) + "\n")
    for i, result in enumerate(results if args.png else []):
        path = args.png if i == 0 else args.png.with_stem(f"{args.png.stem}-{i + 1}")
        print(f"written: {slope_chart(result, path)}")
    return 0


def slope_chart(result: dict, path: Path) -> Path:
    """Each seed's headline and final per-experience scores, config against candidate."""
    from lifelong.metrics import paired_png

    lower_is_better = result["lower_is_better"]
    metric = "perplexity" if lower_is_better else "accuracy"
    panels = [(metric, result["config"], result["values"])]
    panels += [(e["name"], e["config"], e["candidate"]) for e in result["per_experience"]]
    verdict = "adopted" if result["adopted"] else "rejected"
    return paired_png(
        panels,
        path,
        labels=("config", "candidate"),
        lower_is_better=lower_is_better,
        title=f"{result['candidate']} ({verdict}; {len(result['seeds'])} seeds)",
    )


if __name__ == "__main__":
    sys.exit(main())

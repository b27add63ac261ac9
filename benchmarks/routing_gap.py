"""The label-free text config against dense replay, with its stages routed three ways.

    OMP_NUM_THREADS=1 python benchmarks/routing_gap.py --seeds 0 1 2 3 4 --jobs 2 --json gap.json
    python benchmarks/routing_gap.py --seeds 0 --quick      # a few minutes
    python benchmarks/routing_gap.py --seeds 0 --quick stream.train_sequences=64   # overrides

For every seed it trains the suite's cell "PEER + growth in both blocks, plasticity fix,
inferred (byte bigram)" (``configs/text_domains_no_labels.yaml`` at the suite's widths) and
dense replay at 1, 2 and 4 epochs per domain, twice: at the suite's widths (sized to the
stream's one-block PEER layer of 8 heads: 131,712 active parameters per token) and at this
config's (a dense FFN in both blocks, sized to its two 4-head layers: 101,504, equal to
PEER's); then it scores the PEER run's final weights with ``lifelong eval``'s three
routings:

- ``inferred``: the byte bigram's stage for every byte (the run's own figure);
- ``oracle``: every window routed to its own domain's stage (the stage given);
- ``posterior``: every stage's prediction, mixed by its posterior given the prefix
  (E forward passes per batch).

Prints JSON: the final perplexity of each seed, mean ± std (population) over seeds, each
dense replay's best epoch budget (lowest mean), and each routing's ratio to it
(docs/task_inference.md, "Where the gap comes from"). ``{run}_just_trained`` is each run's
perplexity on every domain right after training it (the geometric mean of its matrix's
diagonal): how well it learnt the new domains, before what later training did to them.
"""

import argparse
import functools
import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STREAM = "text_domains"
PEER = "PEER + growth in both blocks, plasticity fix, inferred (byte bigram)"
REPLAY = "dense replay"
REPLAY_EQUAL = "dense replay at the config's widths"  # not a suite method: see run_task
REPLAY_EPOCHS = (1, 2, 4)
ROUTINGS = ("inferred", "oracle", "posterior")
SHAPE = ("model.expert_blocks=", "model.peer.")  # the overrides that shape PEER's layers


@functools.cache
def _suite():
    """benchmarks/cl_suite.py, loaded once per process (every task builds its config there)."""
    spec = importlib.util.spec_from_file_location("cl_suite", ROOT / "benchmarks" / "cl_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_task(task: tuple) -> dict:
    """(method, epochs or None, seed, quick, runs_dir, overrides) -> {"key", "seed",
    "perplexity"} or, for PEER, one perplexity per routing."""
    from omegaconf import OmegaConf

    from lifelong.training.evaluate import evaluate_run
    from lifelong.training.run import run

    method, epochs, seed, quick, runs_dir, overrides = task
    suite = _suite()
    cfg = suite.cell_config(
        STREAM, REPLAY if method == REPLAY_EQUAL else method, seed, quick, Path(runs_dir)
    )
    extra = [*overrides, *([f"train.epochs={epochs}"] if epochs else [])]
    if method == REPLAY_EQUAL:  # PEER's layer shape, then the dense widths fitted to it
        extra = [o for o in suite.BY_NAME[PEER].overrides if o.startswith(SHAPE)] + extra
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(extra))
    if method == REPLAY_EQUAL:
        suite.equalize_active_params(cfg, suite.peer_growths(STREAM, quick))
    key = {PEER: "peer", REPLAY: f"replay_{epochs}ep"}.get(method, f"replay_equal_{epochs}ep")
    cfg.name = f"{key}-{seed}"
    run_dir = run(cfg)
    just_trained = _just_trained(run_dir)
    if method != PEER:
        return {"key": key, "seed": seed, "perplexity": _perplexity(run_dir), **just_trained}
    scores = {"inferred": _perplexity(run_dir), **just_trained}
    for routing in ROUTINGS[1:]:
        scores[routing] = evaluate_run(run_dir, [f"routing={routing}"])["average"]
    return {"key": key, "seed": seed, **scores}


def _perplexity(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["perplexity"]


def _just_trained(run_dir: Path) -> dict:
    """{"just_trained": the geometric mean over domains j of perplexity R[j][j]}."""
    matrix = json.loads((run_dir / "metrics.json").read_text())["perplexity_matrix"]
    logs = [math.log(row[j]) for j, row in enumerate(matrix)]
    return {"just_trained": math.exp(statistics.fmean(logs))}


def summarize(records: list[dict]) -> dict:
    """{"seeds", "per_seed": {name: [...]}, "mean_std": {name: [mean, std]} (names: each
    routing of PEER, each replay run, and each run's ``_just_trained``), and for each
    replay ("replay": the suite's widths, "replay_equal": the config's) its best epoch
    budget ("replay_best") and {routing: mean / its mean} ("ratio_to_replay_best")}."""
    per_seed: dict[str, list[float]] = {}
    for rec in sorted(records, key=lambda r: r["seed"]):
        if rec["key"] == "peer":
            for routing in ROUTINGS:
                per_seed.setdefault(f"peer_{routing}", []).append(rec[routing])
        else:
            per_seed.setdefault(rec["key"], []).append(rec["perplexity"])
        per_seed.setdefault(f"{rec['key']}_just_trained", []).append(rec["just_trained"])
    mean_std = {
        name: [statistics.fmean(v), statistics.pstdev(v) if len(v) > 1 else 0.0]
        for name, v in per_seed.items()
    }
    out = {"seeds": sorted({r["seed"] for r in records}), "per_seed": per_seed}
    out["mean_std"] = mean_std
    for family in ("replay", "replay_equal"):
        best = min((f"{family}_{e}ep" for e in REPLAY_EPOCHS), key=lambda name: mean_std[name][0])
        out[f"{family}_best"] = best
        out[f"ratio_to_{family}_best"] = {
            routing: mean_std[f"peer_{routing}"][0] / mean_std[best][0] for routing in ROUTINGS
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--quick", action="store_true", help="the suite's smaller text stream")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (forked processes)")
    p.add_argument("--runs-dir", default="runs/routing_gap", help="where the runs are written")
    p.add_argument("--json", type=Path, help="also write the result here")
    p.add_argument("overrides", nargs="*", help="run-config overrides for every run")
    args = p.parse_args(argv)
    tasks = [
        (method, epochs, seed, args.quick, args.runs_dir, args.overrides)
        for seed in args.seeds
        for method, epochs in [
            (PEER, None),
            *((replay, e) for replay in (REPLAY, REPLAY_EQUAL) for e in REPLAY_EPOCHS),
        ]
    ]
    result = summarize(_suite().run_tasks(tasks, args.jobs, fn=run_task))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

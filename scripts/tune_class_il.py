"""Tune "PEER + growth + replay" for class-IL Split Digits on a validation split.

    OMP_NUM_THREADS=1 python scripts/tune_class_il.py              # ~2 min on 2 cores
    OMP_NUM_THREADS=1 python scripts/tune_class_il.py --seeds 2 --json tune.json
    OMP_NUM_THREADS=1 python scripts/tune_class_il.py --full    # the configs' epochs (~5 min)

The validation stream is carved from the Split Digits *training* stream only: each
training experience (classes (0,1), (2,3), ..., task label 0) is split, stratified by
class, into a fit part and a validation part, and the library's public ``tensors`` stream
kind turns those into a class-IL stream; the test experiences are never read.

Every candidate runs with ``benchmarks/cl_suite.py``'s ``--quick`` overrides (none with
``--full``) on the class-IL config, so the setting chosen is the one the suite reports at
that length; dense replay (same
``replay_mem_size``) is the reference. The best PEER candidate by mean validation accuracy
is printed after the table.
"""

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
STREAM = "split_digits_class_il"

# The two knobs the search is about are stated in every candidate, so the table does not
# change when the config's defaults do. ``model.stem=false`` is the task-IL config's
# architecture: the expert layer reads the 8x8 digit itself (dim 64 = 64 pixels).
STEM, NO_STEM = ["model.stem=true"], ["model.stem=false"]
FROZEN, TRAINED = ["growth.freeze_query=true"], ["growth.freeze_query=false"]
EWC = ["train.regularizer=ewc", "train.regularizer_lambda=100"]  # the suite's dense EWC λ
DISTILL = ["train.regularizer=distill", "train.regularizer_lambda=1"]  # the suite's LwF λ

# name -> (cl_suite method whose overrides come first, extra overrides). Every PEER candidate
# keeps replay at the config's replay_mem_size and the config's PEER sizes, and none has more
# active parameters per token than the suite's baselines (more sub-keys per growth would).
CANDIDATES = {
    "dense replay, stem": ("dense replay", STEM),
    "dense replay, no stem": ("dense replay", NO_STEM),
    "PEER+replay, stem, query frozen": ("PEER + growth + replay", [*STEM, *FROZEN]),
    "PEER+replay, stem, query trained": ("PEER + growth + replay", [*STEM, *TRAINED]),
    "PEER+replay, stem, query trained, EWC": ("PEER + growth + replay", [*STEM, *TRAINED, *EWC]),
    "PEER+replay, no stem, query frozen": ("PEER + growth + replay", [*NO_STEM, *FROZEN]),
    "PEER+replay, no stem, query trained": ("PEER + growth + replay", [*NO_STEM, *TRAINED]),
    "PEER+replay, no stem, query trained, EWC": (
        "PEER + growth + replay",
        [*NO_STEM, *TRAINED, *EWC],
    ),
    "PEER+replay, no stem, query trained, distill": (
        "PEER + growth + replay",
        [*NO_STEM, *TRAINED, *DISTILL],
    ),
    "PEER+replay, no stem, query trained, 4 sub-keys": (
        "PEER + growth + replay",
        [*NO_STEM, *TRAINED, "model.peer.grow_size=4"],
    ),
    "PEER+replay, no stem, query trained, lr 1e-3": (
        "PEER + growth + replay",
        [*NO_STEM, *TRAINED, "train.lr=0.001"],
    ),
    "PEER+replay, no stem, query trained, upcycled experts": (
        "PEER + growth + replay",
        [*NO_STEM, *TRAINED, "growth.init=upcycle"],
    ),
}


def load_suite():
    """benchmarks/cl_suite.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("cl_suite", ROOT / "benchmarks" / "cl_suite.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    return suite


def experience_tensors(experience) -> tuple[torch.Tensor, torch.Tensor]:
    """All (x, y) of one experience's dataset, stacked."""
    loader = torch.utils.data.DataLoader(experience.dataset, batch_size=len(experience.dataset))
    x, y, *_ = next(iter(loader))
    return x, y


def validation_stream(cfg, val_fraction: float, split_seed: int, folder: Path) -> dict:
    """The ``tensors`` stream options of a class-IL stream whose 'test' experiences are
    digits held out of each *training* experience of the configured stream; its test
    experiences are never read. The pairs go to files, since a config can only name them."""
    from omegaconf import OmegaConf

    from lifelong.data import build_stream

    configured = OmegaConf.to_container(cfg.stream, resolve=True)
    train_path = folder / f"fit-{val_fraction}-{split_seed}.pt"
    val_path = folder / f"val-{val_fraction}-{split_seed}.pt"
    if not val_path.exists():  # the same split for every candidate and seed
        stream = build_stream(**configured)
        train, val = [], []
        for experience in stream.benchmark.train_stream:
            x, y = experience_tensors(experience)
            x_fit, x_val, y_fit, y_val = train_test_split(
                x, y, test_size=val_fraction, stratify=y, random_state=split_seed
            )
            train.append((x_fit, y_fit))
            val.append((x_val, y_val))
        torch.save(train, train_path)
        torch.save(val, val_path)
    return {
        "kind": "tensors",
        "train": str(train_path),
        "test": str(val_path),
        "scenario": configured["scenario"],
    }


def run_candidate(suite, overrides, seed: int, split_seed: int, args, runs_dir: Path) -> dict:
    """One run of the suite's class-IL cell (quick unless ``args.full``), trained and
    scored on the validation stream; returns its metrics.json."""
    from lifelong.config import load_config
    from lifelong.training.run import run

    config, _, quick = suite.STREAMS[STREAM]
    cfg = load_config(
        ROOT / "configs" / config,
        [
            *([] if args.full else quick),
            *overrides,
            f"seed={seed}",
            f"runs_dir={runs_dir}",
            f"name=tune-{time.time_ns()}",
            "log.progress=false",
            "log.tensorboard=false",
            "log.png=false",
        ],
    )
    suite.equalize_active_params(cfg, suite.peer_growths(STREAM, not args.full))
    cfg.stream = validation_stream(cfg, args.val_fraction, split_seed, runs_dir)
    t0 = time.time()
    # Avalanche's replay plugin warns on every experience and resets the warning filters
    # to do so; recording the warnings (and dropping them) is what keeps the output short.
    with warnings.catch_warnings(record=True):
        run_dir = run(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["wall_s"] = time.time() - t0
    return metrics


def run_all(suite, name: str, args, runs_dir: Path) -> dict:
    """Every (validation split, seed) run of one candidate, summarised."""
    method, extra = CANDIDATES[name]
    overrides = [*suite.METHODS[method], *extra]
    runs = [
        run_candidate(suite, overrides, seed, split, args, runs_dir)
        for split in args.split_seeds
        for seed in range(args.seeds)
    ]
    return summarize(name, overrides, runs)


def summarize(name, overrides, runs) -> dict:
    def mean_std(key):
        values = [r[key] for r in runs if r.get(key) is not None]
        if not values:
            return None
        return [statistics.fmean(values), statistics.pstdev(values)]

    return {
        "candidate": name,
        "overrides": overrides,
        "runs": len(runs),
        "val_accuracy": mean_std("average_accuracy"),
        "forgetting": mean_std("forgetting"),
        "expert_usage": mean_std("expert_usage"),
        "kl_nonuniformity": mean_std("kl_nonuniformity"),
        "wall_s": mean_std("wall_s"),
        "active_params_per_token": runs[0]["active_params_per_token"],
    }


def _fmt(pair, digits=3):
    return "–" if pair is None else f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def table(records) -> str:
    lines = [
        "| candidate | val accuracy ↑ | forgetting ↓ | expert usage | KL | wall s "
        "| active params |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['candidate']} | {_fmt(r['val_accuracy'])} | {_fmt(r['forgetting'])} | "
            f"{_fmt(r['expert_usage'])} | {_fmt(r['kl_nonuniformity'], 2)} | "
            f"{_fmt(r['wall_s'], 1)} | {r['active_params_per_token']:,} |"
        )
    return "\n".join(lines)


def pick(records) -> dict | None:
    """The PEER candidate with the highest mean validation accuracy."""
    peer = [r for r in records if not r["candidate"].startswith("dense")]
    return max(peer, key=lambda r: r["val_accuracy"][0]) if peer else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, default=3, help="model seeds per validation split")
    # Two fit/validation splits: a validation stream is ~290 digits (~58 per experience), so
    # one split alone moves a candidate's accuracy by a few points.
    p.add_argument("--split-seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--val-fraction", type=float, default=0.2, help="of the training digits")
    p.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    p.add_argument("--json", metavar="PATH", help="write the records here")
    p.add_argument(
        "--full", action="store_true", help="the configs' epochs, not the suite's --quick"
    )
    args = p.parse_args(argv)

    torch.set_num_threads(1)  # a model this small runs fastest on one thread
    suite = load_suite()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.candidates:
            records.append(run_all(suite, name, args, Path(tmp)))
            print(json.dumps(records[-1]), file=sys.stderr, flush=True)
    best = pick(records)
    print(table(records))
    if best is not None:
        print(f"\nbest PEER candidate on validation: {best['candidate']}: {best['overrides']}")
    out = {"records": records, "best": best and best["candidate"]}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

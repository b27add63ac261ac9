"""Choose a hyper-parameter the same way for every method of a stream, on validation data.

    OMP_NUM_THREADS=1 python scripts/tune.py                     # model.stem on class-IL
    OMP_NUM_THREADS=1 python scripts/tune.py --stream permuted_digits --knob train.lr=0.001,0.003
    OMP_NUM_THREADS=1 python scripts/tune.py --full --json tune.json   # the configs' epochs

For every method that ``benchmarks/cl_suite.py`` runs on the stream, each value of the knob
is tried on a validation stream carved from the stream's *training* experiences only: each
training experience is split, stratified by class, into a fit part and a validation part,
and the library's ``tensors`` stream kind turns those into a stream; the test experiences
are never read. Every method gets the same candidates, seeds and splits, so no method is
tuned harder than the one it is compared with. Prints each method's validation accuracy
per value and the value it prefers; the suite states what it uses (docs/benchmarks.md).
"""

import argparse
import hashlib
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
    """The ``tensors`` stream options of a stream whose 'test' experiences are samples held
    out of each *training* experience of the configured stream (whose test experiences are
    never read). The pairs go to files, since a config can only name them."""
    from omegaconf import OmegaConf

    from lifelong.data import build_stream

    configured = OmegaConf.to_container(cfg.stream, resolve=True)
    key = hashlib.sha1(json.dumps([configured, val_fraction, split_seed]).encode()).hexdigest()
    train_path, val_path = folder / f"fit-{key}.pt", folder / f"val-{key}.pt"
    if not val_path.exists():  # the same split for every method and candidate
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
        (folder / f"scenario-{key}").write_text(stream.scenario)
    scenario = (folder / f"scenario-{key}").read_text()  # task-il: task label = experience
    return {
        "kind": "tensors",
        "train": str(train_path),
        "test": str(val_path),
        "scenario": scenario,
    }


def run_candidate(
    suite, stream: str, method: str, override: str, seed: int, split: int, args, runs_dir: Path
) -> float:
    """Validation accuracy of one run of the suite's cell with ``override`` added."""
    from lifelong.training.run import run

    cfg = suite.cell_config(stream, method, seed, not args.full, runs_dir)
    cfg.merge_with_dotlist([override, f"name=tune-{time.time_ns()}"])
    suite.equalize_active_params(cfg, suite.peer_growths(stream, not args.full))
    cfg.stream = validation_stream(cfg, args.val_fraction, split, runs_dir)
    # Avalanche's replay plugin warns on every experience and resets the warning filters
    # to do so; recording the warnings (and dropping them) keeps the output short.
    with warnings.catch_warnings(record=True):
        run_dir = run(cfg)
    return json.loads((run_dir / "metrics.json").read_text())["average_accuracy"]


def tune(suite, args, runs_dir: Path) -> list[dict]:
    key, values = args.knob.split("=", 1)
    records = []
    for method in suite.methods_for(args.stream):
        if args.methods and method.name not in args.methods:
            continue
        scores = {}
        for value in values.split(","):
            accuracies = [
                run_candidate(
                    suite, args.stream, method.name, f"{key}={value}", seed, split, args, runs_dir
                )
                for split in args.split_seeds
                for seed in range(args.seeds)
            ]
            scores[value] = [statistics.fmean(accuracies), statistics.pstdev(accuracies)]
        best = max(scores, key=lambda v: scores[v][0])
        records.append({"method": method.name, "knob": key, "val_accuracy": scores, "best": best})
        print(json.dumps(records[-1]), file=sys.stderr, flush=True)
    return records


def table(records: list[dict]) -> str:
    values, knob = list(records[0]["val_accuracy"]), records[0]["knob"]
    heads = " | ".join(f"{knob}={v}" for v in values)
    lines = [
        f"| method | {heads} | prefers |",
        "|---|" + "---|" * (len(values) + 1),
    ]
    for r in records:
        cells = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in r["val_accuracy"].values())
        lines.append(f"| {r['method']} | {cells} | {r['best']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--stream", default="split_digits_class_il", help="a classification stream")
    p.add_argument("--knob", default="model.stem=true,false", help="key=value1,value2,...")
    p.add_argument("--seeds", type=int, default=2, help="model seeds per validation split")
    p.add_argument("--split-seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--val-fraction", type=float, default=0.2, help="of the training samples")
    p.add_argument("--json", metavar="PATH", help="write the records here")
    p.add_argument("--full", action="store_true", help="the configs' epochs, not --quick's")
    p.add_argument("--methods", nargs="+", help="only these suite methods (default: all)")
    args = p.parse_args(argv)

    torch.set_num_threads(1)  # models this small run fastest on one thread
    suite = load_suite()
    if suite.STREAMS[args.stream][1] == "lm":
        p.error("--stream must be a classification stream (validation accuracy)")
    with tempfile.TemporaryDirectory() as tmp:
        records = tune(suite, args, Path(tmp))
    print(table(records))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

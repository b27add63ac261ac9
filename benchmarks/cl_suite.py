"""The method × stream table: average accuracy (perplexity), forgetting, wall time.

    python benchmarks/cl_suite.py --quick                 # ~10 min on 2 cores
    python benchmarks/cl_suite.py --json cl_suite.json    # the full suite, 3 seeds

Each cell runs ``lifelong run`` in-process with the stream's config from ``configs/`` plus
the method's overrides, for every seed, and reports mean ± std over seeds. Writes
``docs/results.md`` (``--results`` to change) and, with ``--json``, one record per cell.
Hyper-parameters come from the configs; nothing is tuned on the test stream.
"""

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# stream name -> (config, scenario, overrides for --quick)
STREAMS = {
    "split_digits_task_il": ("split_digits_task_il.yaml", "task-il", ["train.epochs=4"]),
    "split_digits_class_il": ("split_digits_class_il.yaml", "class-il", ["train.epochs=4"]),
    "permuted_digits": ("permuted_digits.yaml", "domain-il", ["train.epochs=3"]),
    "text_domains": (
        "text_domains.yaml",
        "lm",
        ["stream.train_sequences=256", "stream.test_sequences=64", "train.epochs=1"],
    ),
}

DENSE = ["model.ffn=dense", "growth.policy=never", "model.freeze_after_first=[]"]
# method -> overrides on the stream's config (None: not applicable to language models)
METHODS = {
    "dense naive": DENSE,
    # The library's shared-parameter regularisers (docs/regularizers.md); for a dense model
    # every parameter is shared. λ: EWC 100 (Kirkpatrick et al. use 10²-10⁴), LwF 1.
    "dense EWC": [*DENSE, "train.regularizer=ewc", "train.regularizer_lambda=100"],
    "dense LwF": [*DENSE, "train.regularizer=distill", "train.regularizer_lambda=1"],
    "dense replay": [*DENSE, "train.strategy=replay"],
    "joint (upper bound)": [*DENSE, "train.strategy=joint"],
    "MoE + growth": ["model.ffn=moe"],
    "PKM + growth": ["model.ffn=pkm"],
    "PEER + growth, task-aware": ["growth.routing=task_aware"],
    "PEER + growth, task-agnostic": ["growth.routing=task_agnostic"],
    "PEER + growth + replay": ["train.strategy=replay"],
}
NOT_FOR_LM: set[str] = set()  # every method here also runs on the language-model stream
# (stream, method) -> overrides added after the method's own: settings chosen on a
# validation split of that stream's training data (never its test stream).
STREAM_METHOD_OVERRIDES = {
    # scripts/tune_class_il.py, best on validation at --quick and at full length. With one
    # task label, new classes reach the new experts only through the query network, which a
    # frozen query (and its BatchNorm statistics from classes 0-1) cannot do: every class is
    # routed to a few stage-0 experts. Replay shows the query the old classes too, which
    # keeps their routing.
    ("split_digits_class_il", "PEER + growth + replay"): ["growth.freeze_query=false"],
}


def method_overrides(stream: str, method: str) -> list[str]:
    """The method's overrides on one stream."""
    return [*METHODS[method], *STREAM_METHOD_OVERRIDES.get((stream, method), [])]


@functools.cache
def peer_growths(stream: str, quick: bool) -> int:
    """How often the stream's PEER layer grows: its config's growth policy over the task
    labels of its training experiences."""
    from lifelong.config import load_config
    from lifelong.data import experience_task_labels
    from lifelong.experiment import build_stream_from_config
    from lifelong.models import growths_over

    config, _, quick_overrides = STREAMS[stream]
    cfg = load_config(ROOT / "configs" / config, quick_overrides if quick else [])
    spec = build_stream_from_config(cfg)
    labels = [experience_task_labels(e) for e in spec.benchmark.train_stream]
    return growths_over(cfg.growth.policy, labels)


# PKM gets PEER's product keys; only its topk differs (a slot reads one value, PEER two).
PRODUCT_KEYS = ("num_experts", "heads", "key_dim", "score", "query_batchnorm", "grow_size")


def equalize_active_params(cfg, growths: int):
    """Every method on a stream gets the active parameters per token of the stream's PEER
    layer after its ``growths`` growths (each adds model.peer.grow_size sub-keys per side,
    all scored), so the baselines never have fewer than PEER at any experience: the
    layer's registry ``fit`` sets its width (the dense FFN's units, the MoE experts' width
    with its own grown router rows counted, PKM's topk)."""
    from lifelong.experiment import fitted_options

    m = cfg.model
    if m.ffn == "pkm":
        for key in PRODUCT_KEYS:
            m.pkm[key] = m.peer[key]
    for key, value in fitted_options(cfg, growths=growths, missing_only=False).items():
        m[m.ffn][key] = value


def cell_config(stream: str, method: str, seed: int, quick: bool, runs_dir: Path):
    """The run config of one (stream, method, seed) cell."""
    from lifelong.config import load_config

    config, _, quick_overrides = STREAMS[stream]
    overrides = [
        *(quick_overrides if quick else []),
        *method_overrides(stream, method),
        f"seed={seed}",
        f"runs_dir={runs_dir}",
        f"name={stream}-{method.replace(' ', '_').replace(',', '')}-{seed}",
        "log.progress=false",
        "log.tensorboard=false",
        "log.png=false",
    ]
    cfg = load_config(ROOT / "configs" / config, overrides)
    equalize_active_params(cfg, peer_growths(stream, quick))
    return cfg


def run_cell(stream: str, method: str, seed: int, quick: bool, runs_dir: Path) -> dict:
    from lifelong.training.run import run

    cfg = cell_config(stream, method, seed, quick, runs_dir)
    t0 = time.time()
    run_dir = run(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["wall_s"] = time.time() - t0
    if cfg.model.ffn == "dense":  # not an expert layer: every token uses every hidden unit
        metrics["expert_usage"] = metrics["kl_nonuniformity"] = None
    return metrics


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return [statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0]


def summarize(stream: str, method: str, runs: list[dict]) -> dict:
    lm = STREAMS[stream][1] == "lm"
    headline = "perplexity" if lm else "average_accuracy"
    record = {
        "stream": stream,
        "scenario": STREAMS[stream][1],
        "method": method,
        "seeds": len(runs),
        headline: _mean_std([r[headline] for r in runs]),
        "forgetting": _mean_std([r["forgetting"] for r in runs]),
        "wall_s": _mean_std([r["wall_s"] for r in runs]),
        "expert_usage": _mean_std([r["expert_usage"] for r in runs]),
        "kl_nonuniformity": _mean_std([r["kl_nonuniformity"] for r in runs]),
        "active_params_per_token": runs[0]["active_params_per_token"],
    }
    return record


def _fmt(pair, digits=3):
    if pair is None:
        return "–"
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def markdown(records: list[dict], quick: bool, seeds: int) -> str:
    lines = [
        "# Results",
        "",
        "Written by `python benchmarks/cl_suite.py"
        + (" --quick" if quick else "")
        + f"` ({seeds} seed{'s' if seeds > 1 else ''}, mean ± std; 2-core CPU). "
        "Configs and hyper-parameters are the ones in `configs/` and the method overrides in "
        "`benchmarks/cl_suite.py`; nothing was tuned on the test stream.",
        "",
    ]
    for stream, (config, scenario, _) in STREAMS.items():
        rows = [r for r in records if r["stream"] == stream]
        if not rows:
            continue
        lm = scenario == "lm"
        head = "perplexity ↓" if lm else "average accuracy ↑"
        key = "perplexity" if lm else "average_accuracy"
        forget = "forgetting (perplexity rise) ↓" if lm else "forgetting ↓"
        params = sorted({r["active_params_per_token"] for r in rows})
        spread = (params[-1] - params[0]) / params[-1]
        lines += [
            f"## {stream} ({scenario}, `configs/{config}`)",
            "",
            "Active parameters per token after the last experience: "
            + (
                f"{params[0]:,}, equal across methods"
                if spread == 0
                else f"{params[0]:,}–{params[-1]:,} (equal within {100 * spread:.1f}%)"
            )
            + " (the baselines are sized to PEER's count after its last growth, so they "
            "never have fewer at any experience).",
            "",
            f"| method | {head} | {forget} | expert usage | KL | wall s | active params |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            digits = 2 if lm else 3
            lines.append(
                f"| {r['method']} | {_fmt(r[key], digits)} | {_fmt(r['forgetting'], digits)} | "
                f"{_fmt(r['expert_usage'])} | {_fmt(r['kl_nonuniformity'], 2)} | "
                f"{_fmt(r['wall_s'], 1)} | {r['active_params_per_token']:,} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="fewer epochs and a smaller text stream")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--streams", nargs="+", choices=list(STREAMS), default=list(STREAMS))
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--json", metavar="PATH", help="write the list of cell records here")
    p.add_argument("--results", default=str(ROOT / "docs" / "results.md"), help="markdown table")
    args = p.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for stream in args.streams:
            for method in args.methods:
                if method in NOT_FOR_LM and STREAMS[stream][1] == "lm":
                    continue
                runs = []
                for seed in range(args.seeds):
                    runs.append(run_cell(stream, method, seed, args.quick, Path(tmp)))
                record = summarize(stream, method, runs)
                records.append(record)
                print(json.dumps(record), file=sys.stderr, flush=True)
    Path(args.results).write_text(markdown(records, args.quick, args.seeds))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    print(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

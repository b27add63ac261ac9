"""The method × stream table: accuracy (perplexity), forgetting, parameters, routing.

    python benchmarks/cl_suite.py --quick                 # every cell, fewer epochs
    python benchmarks/cl_suite.py --json cl_suite.json    # the full suite, 5 seeds
    python benchmarks/cl_suite.py --shard 1/4 --json part1.json   # cells 1, 5, 9, ... (of 0-3)
    OMP_NUM_THREADS=1 python benchmarks/cl_suite.py --jobs 2      # two runs at once
    python benchmarks/cl_suite.py --merge part0.json part1.json part2.json part3.json \
        --streams split_digits_task_il --methods "PEER + growth, inferred (byte bigram)"
        # (a stream and method with no cell: runs nothing, writes docs/results.md from parts)

Each cell runs ``lifelong run`` in-process with the stream's config from ``configs/`` plus
the method's overrides, for every seed, and reports mean ± std over seeds. The seed is the
run's and the stream's (``stream.seed`` follows ``seed``), so seeds give independent class
orders, permutations and text samples. A method runs only where its routing means
something: a row that reads the task label at test time only on streams that give one,
and a label-free row wherever labels are absent at test time. Every method's widths are
sized to the stream's PEER layer after its last growth (docs/benchmarks.md). Writes
``docs/results.md`` (``--results`` to change) and, with ``--json``, one record per cell.
Nothing is tuned: every hyper-parameter is the config's or the method's own definition.
"""

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LABELLED = frozenset({"task-il", "lm"})  # the task label is given at test time
LABEL_FREE = frozenset({"class-il", "domain-il", "lm"})  # a row may ignore it (lm: no heads)
EVERY = LABELLED | LABEL_FREE
SHARED = frozenset({"class-il", "domain-il", "lm"})  # streams whose models share parameters

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
    "text_domains_long": (
        "text_domains_long.yaml",
        "lm",
        ["stream.train_sequences=256", "stream.test_sequences=64", "train.epochs=1"],
    ),
    # A researcher's own folders (stream kind text_files), stood in for by three packages
    # of the installed standard library: Python code of three kinds, a harder case for
    # telling the domains apart than text_domains' four kinds of text.
    "text_files": (
        "text_domains.yaml",
        "lm",
        ["stream.train_sequences=256", "stream.test_sequences=64", "train.epochs=1"],
    ),
}
USER_FOLDERS = ("json", "email", "asyncio")  # of the standard library, for "text_files"

# Streams that run only these methods: the label-routed and inferred PEER rows and the
# dense references (the ten-domain stream's every cell would take hours).
FEW = frozenset(
    {
        "dense naive",
        "dense replay",
        "PEER + growth, task label at test",
        "PEER + growth, inferred (byte bigram)",
        "PEER + growth, inferred (Gaussian)",
    }
)
ONLY = dict.fromkeys(
    ("text_domains_long", "text_files"),
    FEW | {"PEER + growth, plasticity fix, inferred (byte bigram)"},
)


def stream_overrides(stream: str) -> list[str]:
    """What makes the stream's config that stream: for text_files, the user's paths."""
    if stream != "text_files":
        return []
    import sysconfig

    folders = [str(Path(sysconfig.get_paths()["stdlib"]) / f) for f in USER_FOLDERS]
    return ["stream.kind=text_files", f"stream.paths=[{','.join(folders)}]"]


@dataclass(frozen=True)
class Method:
    name: str
    overrides: tuple[str, ...]  # on the stream's config
    scenarios: frozenset[str] = EVERY  # where it runs
    why: str = ""  # for docs/results.md


DENSE = ("model.ffn=dense", "growth.policy=never", "model.freeze_after_first=[]")
UNFROZEN = ("model.freeze_after_first=[]",)  # shared parameters trained (and regularised)
# Regulariser weights: EWC 100 (Kirkpatrick et al. use 10²-10⁴), distillation 1 (LwF), L2 1.
EWC = ("train.regularizer=ewc", "train.regularizer_lambda=100")
DISTILL = ("train.regularizer=distill", "train.regularizer_lambda=1")
L2 = ("train.regularizer=l2", "train.regularizer_lambda=1")
# No task label at test: each experience's stage (and, for classifiers, head) is inferred
# from the expert layer's input (docs/task_inference.md).
INFERRED = ("growth.routing=inferred", "model.head=multi")
# The plasticity fix chosen on validation files (docs/plasticity.md).
PLASTICITY = (
    *INFERRED,
    "growth.selector=byte_bigram",
    *UNFROZEN,
    *L2,
    "growth.init=upcycle",
    "train.epochs=4",
)

METHODS = [
    Method("dense naive", DENSE),
    Method("dense EWC", (*DENSE, *EWC)),
    Method("dense LwF", (*DENSE, *DISTILL)),
    Method("dense replay", (*DENSE, "train.strategy=replay")),
    Method("joint (upper bound)", (*DENSE, "train.strategy=joint")),
    Method(
        "frozen backbone",
        ("model.ffn=dense", "growth.policy=never", "model.freeze_after_first=[backbone]"),
        frozenset({"task-il", "class-il", "domain-il"}),  # an LM would have nothing to train
        why="the dense FFN (and stem) frozen after the first experience; the heads train",
    ),
    Method(
        "dense growth",
        ("model.ffn=dense", "model.dense.grow_size=4"),
        why="DenseFFN grows 4 units per experience, routed as PEER is",
    ),
    Method("MoE + growth", ("model.ffn=moe",)),
    Method(
        "Lifelong-MoE",
        ("model.ffn=moe", *UNFROZEN, *DISTILL),
        why="MoE growth, shared parameters distilled (Chen et al. 2023)",
    ),
    Method("PKM + growth", ("model.ffn=pkm",)),
    Method(
        "PEER + growth, task label at test",
        ("growth.routing=task_aware",),
        LABELLED,
        why="each sample uses the stage of its task label",
    ),
    Method(
        "PEER + growth, no task label",
        ("growth.routing=task_agnostic",),
        LABEL_FREE,
        why="every sample uses all experts",
    ),
    Method("PEER + growth + replay", ("train.strategy=replay",)),
    Method(
        "PEER + growth + replay, query trained",
        ("train.strategy=replay", "growth.freeze_query=false"),
        frozenset({"class-il", "domain-il"}),
        why="replay shows the query old data, so it keeps training",
    ),
    Method("PEER + growth, shared L2", (*UNFROZEN, *L2), SHARED),
    Method("PEER + growth, shared EWC", (*UNFROZEN, *EWC), SHARED),
    Method("PEER + growth, shared distilled", (*UNFROZEN, *DISTILL), SHARED),
    Method(
        "PEER + growth in every block",
        ("model.expert_blocks=[0,1]",),
        frozenset({"lm"}),
        why="both transformer blocks' FFNs are growing PEER layers",
    ),
    Method(
        "PEER + growth, inferred (Gaussian)",
        (*INFERRED, "growth.selector=gaussian"),
        LABEL_FREE,
        why="no label: Gaussians per class of each experience, on 256 random ReLU features",
    ),
    Method(
        "PEER + growth, inferred (Gaussian, raw features)",
        (*INFERRED, "growth.selector=gaussian", "growth.selector_features=0"),
        LABEL_FREE,
        why="the Gaussian selector on the layer input itself: D² memory with D = dim",
    ),
    Method(
        "PEER + growth, inferred (key affinity)",
        (*INFERRED, "growth.selector=key_affinity"),
        LABEL_FREE,
        why="no label: the stage whose product keys best match the frozen query",
    ),
    Method(
        "PEER + growth, inferred (byte bigram)",
        (*INFERRED, "growth.selector=byte_bigram"),
        frozenset({"lm"}),
        why="no label: each domain's byte and byte-pair counts name the stage of each byte",
    ),
    Method(
        "PEER + growth in every block, inferred (Gaussian)",
        (*INFERRED, "growth.selector=gaussian", "model.expert_blocks=[0,1]"),
        frozenset({"lm"}),
        why="the plasticity fix with no label: each block infers its own stage",
    ),
    Method(
        "PEER + growth, plasticity fix, inferred (byte bigram)",
        PLASTICITY,
        frozenset({"lm"}),
        why="shared parameters under L2 (λ 1), upcycled experts, 4 epochs (chosen on "
        "validation files), stage inferred",
    ),
    Method(
        "PEER + growth in both blocks, plasticity fix, inferred (byte bigram)",
        (*PLASTICITY, "model.expert_blocks=[0,1]", "model.peer.heads=4", "train.lr=0.005"),
        frozenset({"lm"}),
        why="configs/text_domains_no_labels.yaml: the plasticity fix with a growing PEER "
        "layer of 4 heads in each block (fewer active parameters than one of 8), "
        "learning rate 0.005 (chosen on validation files)",
    ),
    Method(
        "PEER + growth in both blocks, plasticity fix, inferred (byte shape)",
        (
            *PLASTICITY,
            "model.expert_blocks=[0,1]",
            "model.peer.heads=4",
            "train.lr=0.005",
            "growth.selector=byte_shape",
        ),
        frozenset({"lm"}),
        why="the row above with each byte's stage inferred by 7-grams of the bytes' shapes "
        "(better routed perplexity on validation files, 7 % more evaluation time)",
    ),
    Method(
        "PEER + growth, shared L2, inferred (Gaussian)",
        (*INFERRED, "growth.selector=gaussian", *UNFROZEN, *L2),
        frozenset({"lm"}),
        why="shared parameters trained under L2, not frozen: the selector's features drift",
    ),
]
BY_NAME = {m.name: m for m in METHODS}

# Permuted Digits keeps its config's stem for the methods that do better with it, and
# feeds the 64 pixels to the FFN directly for those that do better without: the choice was
# made per method on validation data carved from the training experiences, the same
# candidates and splits for every method (scripts/tune.py; docs/benchmarks.md).
NO_STEM_ON_PERMUTED = frozenset(
    {
        "MoE + growth",
        "PEER + growth + replay",
        "PEER + growth + replay, query trained",
        "PEER + growth, inferred (Gaussian)",
        "PEER + growth, inferred (Gaussian, raw features)",
        "PEER + growth, inferred (key affinity)",
        "PEER + growth, no task label",
        "PEER + growth, shared EWC",
        "PEER + growth, shared L2",
        "PEER + growth, shared distilled",
        "PKM + growth",
        "dense naive",
        "frozen backbone",
        "joint (upper bound)",
    }
)


def method_overrides(stream: str, method: str) -> list[str]:
    """The method's overrides on one stream."""
    tuned = stream == "permuted_digits" and method in NO_STEM_ON_PERMUTED
    return [*BY_NAME[method].overrides, *(["model.stem=false"] if tuned else [])]


def methods_for(stream: str) -> list[Method]:
    scenario, only = STREAMS[stream][1], ONLY.get(stream)
    return [m for m in METHODS if scenario in m.scenarios and (only is None or m.name in only)]


@functools.cache
def peer_growths(stream: str, quick: bool) -> int:
    """How often the stream's PEER layer grows: its config's growth policy over the task
    labels of its training experiences."""
    from lifelong.config import load_config
    from lifelong.data import experience_task_labels
    from lifelong.experiment import build_stream_from_config
    from lifelong.models import growths_over

    config, _, quick_overrides = STREAMS[stream]
    overrides = [*stream_overrides(stream), *(quick_overrides if quick else [])]
    cfg = load_config(ROOT / "configs" / config, overrides)
    spec = build_stream_from_config(cfg)
    labels = [experience_task_labels(e) for e in spec.benchmark.train_stream]
    return growths_over(cfg.growth.policy, labels)


# PKM gets PEER's product keys; only its topk differs (a slot reads one value, PEER two).
PRODUCT_KEYS = ("num_experts", "heads", "key_dim", "score", "query_batchnorm", "grow_size")


def equalize_active_params(cfg, growths: int):
    """Every method on a stream gets the active parameters per token of the stream's PEER
    layer after its ``growths`` growths (each adds model.peer.grow_size sub-keys per side,
    all scored), so the baselines never have fewer than PEER at any experience: the
    layer's registry ``fit`` sets its width (the dense FFN's units, net of what it grows;
    the MoE experts' width with its own grown router rows counted; PKM's topk)."""
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
        *stream_overrides(stream),
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
        for key in ("expert_usage", "kl_nonuniformity", "kl_nonuniformity_normalized"):
            metrics[key] = None
    return metrics


def merged(records: list[dict], earlier: list[list[dict]]) -> list[dict]:
    """``earlier`` record lists, then ``records``; a later cell replaces an earlier one of the
    same stream and method. Ordered as the suite runs them (stream, then method)."""
    cells = {}
    for rec in [r for batch in earlier for r in batch] + records:
        cells[rec["stream"], rec["method"]] = rec
    streams, methods = list(STREAMS), [m.name for m in METHODS]

    def order(rec):
        s, m = rec["stream"], rec["method"]
        return (
            streams.index(s) if s in streams else len(streams),
            methods.index(m) if m in methods else len(methods),
        )

    return sorted(cells.values(), key=order)


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return [statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0]


FIGURES = (
    "task_inference_accuracy",
    "selector_bytes",
    "forgetting",
    "forgetting_bits_per_byte",
    "bits_per_byte",
    "wall_s",
    "expert_usage",
    "kl_nonuniformity",
    "kl_nonuniformity_normalized",
)


def summarize(stream: str, method: str, runs: list[dict]) -> dict:
    lm = STREAMS[stream][1] == "lm"
    headline = "perplexity" if lm else "average_accuracy"
    record = {
        "stream": stream,
        "scenario": STREAMS[stream][1],
        "method": method,
        "seeds": len(runs),
        headline: _mean_std([r[headline] for r in runs]),
        **{key: _mean_std([r.get(key) for r in runs]) for key in FIGURES},
        "params_total": runs[0]["params"]["total"],
        "params_active_per_token": runs[0]["params"]["active_per_token"],
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
        + f"` ({seeds} seed{'s' if seeds > 1 else ''}, mean ± std over seeds, each seed its "
        "own stream; 2-core CPU). Configs and hyper-parameters are the ones in `configs/` "
        "and the method overrides in `benchmarks/cl_suite.py`; nothing was tuned on the "
        "test stream, and the one choice made on data (the stem) was made on validation "
        "data the same way for every method. Methods and budgets: `docs/benchmarks.md`; "
        "inferred routing: `docs/task_inference.md`.",
        "",
    ]
    for stream, (config, scenario, _) in STREAMS.items():
        rows = [r for r in records if r["stream"] == stream]
        if not rows:
            continue
        lm = scenario == "lm"
        where = f"`configs/{config}`"
        if stream == "text_files":
            where += f" on the standard library's {', '.join(USER_FOLDERS)} folders"
        lines += [f"## {stream} ({scenario}, {where})", ""]
        if lm:
            lines += [
                "| method | perplexity ↓ | bits/byte ↓ | forgetting: perplexity rise ↓ | "
                "forgetting: bits/byte rise ↓ | stage inferred ↑ | usage | KL / log N | params "
                "| active/token | wall s |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
        else:
            lines += [
                "| method | average accuracy ↑ | forgetting ↓ | stage inferred ↑ | usage | "
                "KL / log N | params | active/token | wall s |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
        for r in rows:
            common = (
                f"{_fmt(r.get('task_inference_accuracy'))} | {_fmt(r['expert_usage'])} | "
                f"{_fmt(r['kl_nonuniformity_normalized'])} | "
                f"{r['params_total']:,} | {r['params_active_per_token']:,} | "
                f"{_fmt(r['wall_s'], 1)} |"
            )
            if lm:
                lines.append(
                    f"| {r['method']} | {_fmt(r['perplexity'], 2)} | {_fmt(r['bits_per_byte'])} "
                    f"| {_fmt(r['forgetting'], 2)} | {_fmt(r['forgetting_bits_per_byte'])} | "
                    + common
                )
            else:
                lines.append(
                    f"| {r['method']} | {_fmt(r['average_accuracy'])} | "
                    f"{_fmt(r['forgetting'])} | " + common
                )
        lines.append("")
    lines += verdicts(records)
    return "\n".join(lines)


def _best(rows: list[dict], key: str, lm: bool) -> dict | None:
    """The row with the best mean ``key`` (lowest perplexity, highest accuracy)."""
    rows = [r for r in rows if r[key] is not None]
    if not rows:
        return None
    return (min if lm else max)(rows, key=lambda r: r[key][0])


def verdicts(records: list[dict]) -> list[str]:
    """Plain sentences per stream: the best PEER row against the best baseline (joint
    training apart: it sees the whole stream at once), over every method and again over
    the methods that store no samples, and by how much PEER wins or loses."""
    lines = ["## Where expert growth stands", ""]
    for stream, (_, scenario, _) in STREAMS.items():
        rows = [r for r in records if r["stream"] == stream and not r["method"].startswith("joint")]
        for label, pool in (("", rows), (", storing no samples", _data_free(rows))):
            line = _verdict(stream + label, pool, scenario == "lm")
            if line:
                lines.append(line)
    return [*lines, ""]


def _data_free(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "replay" not in r["method"]]


def _verdict(title: str, rows: list[dict], lm: bool) -> str | None:
    key = "perplexity" if lm else "average_accuracy"
    peer = _best([r for r in rows if r["method"].startswith("PEER")], key, lm)
    baseline = _best([r for r in rows if not r["method"].startswith("PEER")], key, lm)
    if peer is None or baseline is None:
        return None
    gap = peer[key][0] - baseline[key][0]
    wins = gap < 0 if lm else gap > 0
    close = abs(gap) <= max(peer[key][1], baseline[key][1])
    unit, digits = ("perplexity", 2) if lm else ("accuracy", 3)
    return (
        f"- **{title}:** {'PEER wins' if wins else 'PEER loses'}"
        f"{' (within one std over seeds)' if close else ''}: the best of its rows, "
        f"{peer['method']}, has {unit} {peer[key][0]:.{digits}f} ± {peer[key][1]:.{digits}f} "
        f"against {baseline[key][0]:.{digits}f} ± {baseline[key][1]:.{digits}f} for the best "
        f"baseline, {baseline['method']} ({abs(gap):.{digits}f} {'better' if wins else 'worse'})."
    )


def _run_task(task: tuple) -> dict:
    return run_cell(*task)


def run_tasks(tasks: list[tuple], jobs: int, fn=_run_task) -> list[dict]:
    """``fn(task)`` for every task, in order (by default ``run_cell(*task)`` for every
    (stream, method, seed, quick, runs_dir)); ``jobs`` > 1 runs that many at once in forked
    worker processes (give each one thread: OMP_NUM_THREADS=1)."""
    if jobs <= 1:
        return [fn(task) for task in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(fn, tasks))


def shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard {text}: I must be in 0..N-1")
    return index, count


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="fewer epochs and a smaller text stream")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--streams", nargs="+", choices=list(STREAMS), default=list(STREAMS))
    p.add_argument("--methods", nargs="+", choices=list(BY_NAME), default=list(BY_NAME))
    p.add_argument("--json", metavar="PATH", help="write the list of cell records here")
    p.add_argument("--results", default=str(ROOT / "docs" / "results.md"), help="markdown table")
    p.add_argument(
        "--shard",
        type=shard,
        default=(0, 1),
        metavar="I/N",
        help="run only cells I, I+N, I+2N, ... (0 <= I < N) of the chosen streams and methods, "
        "so N machines share the suite; --merge their --json files afterwards",
    )
    p.add_argument("--jobs", type=int, default=1, help="cells (seeds) run at once on this machine")
    p.add_argument(
        "--merge",
        nargs="+",
        default=[],
        metavar="JSON",
        help="earlier --json records to keep in the table (the cells run now replace theirs)",
    )
    args = p.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    records = []
    index, count = args.shard
    cells = [
        (stream, method)
        for stream in args.streams
        for method in methods_for(stream)
        if method.name in args.methods
    ]
    mine = cells[index::count]
    with tempfile.TemporaryDirectory() as tmp:
        tasks = [
            (stream, method.name, seed, args.quick, Path(tmp))
            for stream, method in mine
            for seed in range(args.seeds)
        ]
        runs = iter(run_tasks(tasks, args.jobs))
        for stream, method in mine:
            record = summarize(stream, method.name, [next(runs) for _ in range(args.seeds)])
            records.append(record)
            print(json.dumps(record), file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    records = merged(records, [json.loads(Path(p).read_text()) for p in args.merge])
    Path(args.results).write_text(markdown(records, args.quick, args.seeds))
    print(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

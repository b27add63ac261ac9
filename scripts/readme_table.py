"""The README's results table: per stream, PEER growth next to the strongest baselines,
each a seed-0 `lifelong run` whose exact command is printed with its figures.

    python scripts/readme_table.py --suite full.json    # baselines picked from the suite
    python scripts/readme_table.py                       # the rows listed in ROWS

For each stream the rows are the config's own PEER growth, on streams without a task label
at test PEER growth with its stage inferred too, the best continual baseline of
the suite (dense replay, dense LwF or dense growth, by the suite's mean over seeds) and
joint training (the upper bound). Every command carries the overrides of the suite's cell,
the widths that equalise active parameters included, so a reader can rerun any row.
"""

import argparse
import importlib.util
import json
import re
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
INFERRED = "PEER + growth, inferred (Gaussian)"
PEER_ROWS = {  # the config's own PEER growth, then growth with its stage inferred
    "split_digits_task_il": ("PEER + growth, task label at test",),
    "split_digits_class_il": ("PEER + growth, no task label", INFERRED),
    "permuted_digits": ("PEER + growth, no task label", INFERRED),
    "text_domains": ("PEER + growth, task label at test", "PEER + growth, inferred (byte bigram)"),
}
CANDIDATES = ("dense replay", "dense LwF", "dense growth")
JOINT = "joint (upper bound)"


def load_suite():
    spec = importlib.util.spec_from_file_location("cl_suite", ROOT / "benchmarks" / "cl_suite.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    return suite


def rows_from(suite, records: list[dict] | None) -> list[tuple[str, str]]:
    """(stream, method) rows: PEER growth (and inferred), the best candidate baseline, joint."""
    rows = []
    for stream, (_, scenario, _) in suite.STREAMS.items():
        lm = scenario == "lm"
        key = "perplexity" if lm else "average_accuracy"
        cells = [r for r in records or [] if r["stream"] == stream and r["method"] in CANDIDATES]
        best = suite._best(cells, key, lm)
        rows += [(stream, method) for method in PEER_ROWS[stream]]
        rows.append((stream, best["method"] if best else "dense replay"))
        rows.append((stream, JOINT))
    return rows


def command(suite, stream: str, method: str, cfg) -> str:
    """The `lifelong run` command of a cell: the config, the method's overrides and the
    fitted widths (what equalising active parameters changed), at seed 0."""
    from lifelong.config import load_config

    config = suite.STREAMS[stream][0]
    base = load_config(ROOT / "configs" / config, suite.method_overrides(stream, method))
    group = cfg.model.ffn
    widths = [
        f"model.{group}.{k}={v}"
        for k, v in OmegaConf.to_container(cfg.model[group]).items()
        if base.model[group][k] != v
    ]
    name = f"name={stream}-{re.sub(r'[^a-z0-9]+', '_', method.lower()).strip('_')}"
    overrides = [*suite.method_overrides(stream, method), *widths, name]
    quoted = [f'"{o}"' if "[" in o or " " in o else o for o in overrides]
    return " ".join(["lifelong run", f"configs/{config}", *quoted])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--suite", help="the suite's --json output, to pick the strongest baseline")
    args = p.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    from lifelong.training.run import run

    suite = load_suite()
    records = json.loads(Path(args.suite).read_text()) if args.suite else None
    lines = [
        "| stream | method | accuracy or perplexity | forgetting | params | active/token |",
        "|---|---|---|---|---|---|",
    ]
    commands = []
    with tempfile.TemporaryDirectory() as tmp:
        for stream, method in rows_from(suite, records):
            cfg = suite.cell_config(stream, method, 0, False, Path(tmp))
            cfg.log.png = cfg.log.tensorboard = False
            metrics = json.loads((run(cfg) / "metrics.json").read_text())
            if suite.STREAMS[stream][1] == "lm":
                value = f"perplexity {metrics['perplexity']:.2f}"
            else:
                value = f"accuracy {metrics['average_accuracy']:.3f}"
            forgetting = metrics["forgetting"]
            forgetting = "–" if forgetting is None else f"{forgetting:+.3f}"
            params = metrics["params"]
            lines.append(
                f"| {stream} | {method} | {value} | {forgetting} | {params['total']:,} | "
                f"{params['active_per_token']:,} |"
            )
            commands.append(command(suite, stream, method, cfg))
            print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))
    print()
    print("\n".join(commands))
    return 0


if __name__ == "__main__":
    sys.exit(main())

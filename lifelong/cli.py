"""The ``lifelong`` command line.

    lifelong run configs/split_digits_task_il.yaml train.epochs=2 name=quick
    lifelong run                      # the default: the text-domain stream
    lifelong run text_domains_smoke   # a shipped config by name (lifelong/configs/)
    lifelong run configs/permuted_digits.yaml --print-config       # the resolved config
    lifelong run configs/permuted_digits.yaml name=p resume=true   # continue a killed run
    lifelong eval runs/p                                           # re-score its checkpoint
    torchrun --nproc_per_node=2 -m lifelong run configs/permuted_digits.yaml  # 2 ranks

Bad input (an unknown key, a wrong type, a missing file or data path) prints one line on
stderr and exits with status 2. Set LIFELONG_DEBUG=1 to see the traceback instead.
Under torchrun every rank runs this command line; rank 0 prints the messages and results,
other ranks only errors of their own.
"""

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

DEFAULT_CONFIG = "text_domains"
SHIPPED = Path(__file__).resolve().parent / "configs"  # the configs, inside the package


def resolve_config(config: str | None) -> Path:
    """A config argument as a file: a path as given, else a shipped config's name
    (``text_domains_smoke`` or ``text_domains_smoke.yaml``); None: the default job."""
    config = DEFAULT_CONFIG if config is None else config
    path = Path(config)
    if path.is_file() or len(path.parts) > 1:
        return path  # a path (a missing one is reported by load_config)
    shipped = SHIPPED / (config if config.endswith((".yaml", ".yml")) else f"{config}.yaml")
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.yaml")))
    raise FileNotFoundError(
        f"config '{config}' is neither a file nor a shipped config; pass a YAML path or one "
        f"of: {names}"
    )


RUN_HELP = """\
Train a model whose expert layers grow over a stream of experiences, evaluate the whole
test stream after every experience, and write to <runs_dir>/<name>/:
  config.yaml    the resolved config
  metrics.json   accuracy (or perplexity) matrix, average, forgetting, BWT, FWT,
                 expert usage and KL non-uniformity
  *.png          matrix heatmap, forgetting curves, expert-usage maps
  events.*       TensorBoard scalars, forgetting curves, usage heatmaps, hparams
  checkpoint.pt  the state after the last finished experience (weights-only format)
  run.json       wall time
Then:  tensorboard --logdir <runs_dir>
An interrupted run continues from its last finished experience with the same command
plus resume=true; without it an existing run directory is refused, never overwritten.

Overrides are dotted key=value pairs merged onto the config, e.g.
  model.ffn=dense growth.policy=never train.epochs=5 name=dense_naive runs_dir=runs
The keys and their meaning are in lifelong/config.py and docs/running.md.
"""


EVAL_HELP = """\
Rebuild a run's model from <run_dir>/config.yaml and checkpoint.pt (weights only: a file
carrying pickled objects is refused), score it on every experience of the run's test
stream and write <run_dir>/eval.json. stream=train scores the training split instead
(eval_train.json); stream.key=value overrides evaluate another stream of the same tasks,
e.g. stream.test_sequences=512 or stream.seed=1. routing=oracle scores a run with inferred
routing with every sample routed to its own experience's stage: what inferring the stage
costs the same weights (eval_routing-oracle.json); routing=posterior mixes a byte LM's
stages by how well each predicted the bytes before (eval_routing-posterior.json).
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lifelong",
        description="Continual learning by expert growth (PEER layers that grow per task).",
        epilog="Run 'lifelong run --help' for the options of a run.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser(
        "run",
        help="train and evaluate over a task stream",
        description=RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "config",
        nargs="?",
        help=f"YAML config, a path or a shipped config's name (default: {DEFAULT_CONFIG}); "
        "a key=value here is an override",
    )
    r.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    r.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    e = sub.add_parser(
        "eval",
        help="re-evaluate a run from its checkpoint",
        description=EVAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("run_dir", help="the run directory, e.g. runs/default")
    e.add_argument(
        "overrides",
        nargs="*",
        metavar="stream=...",
        help="stream=test|train, routing=run|oracle|posterior, stream.key=value",
    )
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lifelong")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _run(args) -> int:
    from omegaconf import OmegaConf

    from .config import load_config

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not config.endswith((".yaml", ".yml")):
        config, overrides = None, [config, *overrides]
    # Before importing Avalanche: config errors are instant.
    cfg = load_config(resolve_config(config), overrides)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return 0
    from .training.console import configure, run_results
    from .training.distributed import launched_rank
    from .training.errors import RunError
    from .training.report import report_complete
    from .training.run import run

    rank = launched_rank()
    configure(cfg.log.level if rank == 0 else "error")  # one rank tells the story
    run_dir = run(cfg)
    if rank != 0:
        return 0
    if not report_complete(run_dir):  # every promised file exists and parses
        raise RunError(f"'{run_dir}' finished training but its report is incomplete")
    print(run_results(json.loads((run_dir / "metrics.json").read_text())))
    print(f"run finished: {run_dir}\n  tensorboard --logdir {run_dir.parent}")
    return 0


def _eval(args) -> int:
    from .config import ConfigError
    from .training.console import results_table
    from .training.distributed import launched_ranks
    from .training.evaluate import evaluate_run

    if launched_ranks() > 1:  # every rank would score the whole test stream and write one file
        raise ConfigError(
            "lifelong eval runs in one process (it reads a sharded run's tables from its "
            "shard files): start it without torchrun, e.g. lifelong eval " + args.run_dir
        )

    result = evaluate_run(Path(args.run_dir), list(args.overrides))
    names, scores = result["experience_names"], result["per_experience"]
    summary = {"average": result["average"]}
    print(f"scored: {result['scored']}")
    print(results_table(names, scores, metric=result["metric"], summary=summary))
    print(f"written: {Path(args.run_dir) / result['file']}")
    return 0


def main(argv=None) -> int:
    # Avalanche imports qpsolvers (for GEM), which warns that no QP solver is installed;
    # irrelevant unless GEM is used, and it would break the one-line error contract.
    warnings.filterwarnings("ignore", message="no QP solver found", category=UserWarning)
    # log.progress=false log.tensorboard=false ask for no loggers; Avalanche warns about it.
    warnings.filterwarnings("ignore", message="No loggers specified", category=UserWarning)
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        return _eval(args) if args.command == "eval" else _run(args)
    except KeyboardInterrupt:
        print("lifelong: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("LIFELONG_DEBUG"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        # Under torchrun every rank runs this line: an error all meet alike is rank 0's to
        # report, any other is reported by the rank that met it.
        rank, ranks = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        if ranks == 1 or (rank == 0 and _same_on_every_rank(err)):
            print(f"lifelong: error: {message}", file=sys.stderr)
        elif not _same_on_every_rank(err):
            print(f"lifelong: error: rank {rank}: {message}", file=sys.stderr)
        return 2


def _same_on_every_rank(err: Exception) -> bool:
    """Whether every rank of a torchrun launch meets ``err`` alike (a bad config, stream,
    batch or loss, all decided from the same input), so rank 0 alone reports it. A run
    directory rank 0 refuses stops the others silently (``decided_by_writer``)."""
    from .config import ConfigError
    from .data.errors import DataError
    from .parallel.plugin import DataParallelError
    from .plugins import NonFiniteLossError

    same = (ConfigError, DataError, DataParallelError, NonFiniteLossError, FileNotFoundError)
    return isinstance(err, same)


if __name__ == "__main__":
    sys.exit(main())

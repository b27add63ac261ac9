"""What inferring the stage costs at evaluation: the same trained model evaluated over its
test stream twice, once with inferred routing (the selector scores every sample, or every
token) and once routed by the true experience (``GrowingExperts.routed_to``: no selector,
the oracle). Two ratios of inferred to oracle time:

- ``run_ratio``: the run's evaluation phase, ``strategy.eval`` over the test stream with
  the run's own metrics (accuracy or perplexity, loss, routing metrics, stage inference),
  as ``lifelong run`` evaluates after every experience;
- ``ratio``: the bare forward passes and scoring (``score_experience``), the stricter one;
- ``selector_share``: of the inferred bare evaluation, the CPU time spent choosing the
  experiences (the selector's scores, and for a language model their running sum and
  argmax) over the time of everything else. The rest of ``ratio`` is what routing each
  sample or token to its own stage costs in the expert layers (an oracle's batch holds one
  experience and scores only the sub-keys its stage had).

    OMP_NUM_THREADS=1 python benchmarks/selector_cost.py --json selector_cost.json
    python benchmarks/selector_cost.py --configs configs/permuted_digits.yaml --set model.stem=false

Each config is trained once with ``growth.routing=inferred`` (quiet, in a temporary
directory; ``--set`` overrides apply to every one of them), then both
evaluations alternate ``--repeats`` times and the fastest of each is kept, so a burst of
other work on the machine does not land on one side only. Times are the process's CPU
seconds (``time.process_time``), not wall time: on a shared machine the wall time of a
40 ms evaluation swings by half when another process takes the core, its CPU time does
not. Run it with ``OMP_NUM_THREADS=1``. Goal: ``run_ratio`` <= 1.10.
Also printed: ``inferred_accuracy`` / ``oracle_accuracy`` (or perplexities), the price of a
wrong guess, and the selector's bytes.
"""

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    "configs/split_digits_class_il.yaml",
    "configs/permuted_digits.yaml",
    "configs/text_domains.yaml",
]
QUIET = ["log.progress=false", "log.tensorboard=false", "log.png=false"]


def trained(config: str, overrides: list[str], runs_dir: Path):
    """(cfg, model, task, test stream, run dir) after a quiet inferred-routing run."""
    from lifelong.config import load_config
    from lifelong.training.evaluate import load_run
    from lifelong.training.run import run

    extra = ["growth.routing=inferred", "model.head=multi", f"runs_dir={runs_dir}", *QUIET]
    run_dir = run(load_config(ROOT / config, [*extra, *overrides]))
    cfg, built = load_run(run_dir)
    return cfg, built.model, built.spec.task, built.spec.benchmark.test_stream, run_dir


def routed(model, experience, oracle: bool):
    """Route every inferring layer by ``experience`` (the oracle), or leave inference on."""
    from lifelong.models import routed_as_trained

    if not oracle:
        return contextlib.nullcontext()
    return routed_as_trained(model, int(experience.current_experience))


@contextlib.contextmanager
def timing_inference(model):
    """Count the CPU seconds the inferring layers spend choosing experiences (``infer``:
    the selector's scores, and for a language model their running sum and argmax) into
    the yielded list's one entry."""
    from lifelong.metrics.task_inference import inferring_layers

    spent = [0.0]
    layers = list(inferring_layers(model).values())

    def timed(infer):
        def run(*args, **kwargs):
            t0 = time.process_time()
            try:
                return infer(*args, **kwargs)
            finally:
                spent[0] += time.process_time() - t0

        return run

    for layer in layers:
        layer.infer = timed(layer.infer)  # an instance attribute shadows the method
    try:
        yield spent
    finally:
        for layer in layers:
            del layer.infer


def evaluate(
    model, test_stream, kind: str, batch_size: int, oracle: bool
) -> tuple[float, float, float]:
    """(seconds, score, selector seconds) over the test stream, the score averaged as the
    run's headline; ``oracle``: route by the experience (no selector)."""
    from lifelong.training.evaluate import score_experience

    scores, seconds = [], 0.0
    with timing_inference(model) as selector:
        for experience in test_stream:
            with routed(model, experience, oracle):
                t0 = time.process_time()
                scores.append(
                    score_experience(
                        model, experience, kind=kind, batch_size=batch_size, device="cpu"
                    )
                )
                seconds += time.process_time() - t0
    if kind == "perplexity":  # the headline's geometric mean: exp of the mean loss
        return seconds, math.exp(sum(math.log(v) for v in scores) / len(scores)), selector[0]
    return seconds, sum(scores) / len(scores), selector[0]


def run_evaluation(run_dir: Path, repeats: int) -> dict:
    """Fastest seconds of ``strategy.eval`` over the test stream, one experience per call,
    with the run's metrics: inferred, and routed to each experience."""
    from lifelong.training.evaluate import load_run

    _, built = load_run(run_dir, metrics=True)
    strategy = built.strategy
    times = {"inferred": [], "oracle": []}
    for _ in range(repeats):
        for side in times:
            seconds = 0.0
            for experience in built.spec.benchmark.test_stream:
                with routed(built.model, experience, side == "oracle"):
                    t0 = time.process_time()
                    strategy.eval(experience)
                    seconds += time.process_time() - t0
            times[side].append(seconds)
    best = {side: min(t) for side, t in times.items()}
    return {
        "run_eval_inferred_s": best["inferred"],
        "run_eval_oracle_s": best["oracle"],
        "run_ratio": best["inferred"] / best["oracle"],
    }


def measure(config: str, overrides: list[str], repeats: int, runs_dir: Path) -> dict:
    cfg, model, task, test_stream, run_dir = trained(config, overrides, runs_dir)
    return {
        "config": config,
        "overrides": overrides,
        **timed(cfg, model, task, test_stream, repeats),
        **run_evaluation(run_dir, repeats),
    }


def timed(cfg, model, task: str, test_stream, repeats: int) -> dict:
    """Both evaluations of a trained model, alternated ``repeats`` times."""
    from lifelong.metrics.task_inference import inferring_layers, selector_bytes

    kind = "perplexity" if task == "lm" else "accuracy"
    batch = cfg.train.eval_batch_size
    times = {"inferred": [], "oracle": []}
    score, selector = {}, []
    for _ in range(repeats):
        for side in ("inferred", "oracle"):
            seconds, score[side], spent = evaluate(
                model, test_stream, kind, batch, side == "oracle"
            )
            times[side].append(seconds)
            if side == "inferred":
                selector.append(spent)
    best = {side: min(t) for side, t in times.items()}
    fastest = selector[times["inferred"].index(best["inferred"])]  # of the fastest repeat
    return {
        "metric": kind,
        f"inferred_{kind}": score["inferred"],
        f"oracle_{kind}": score["oracle"],
        "inferred_eval_s": best["inferred"],
        "oracle_eval_s": best["oracle"],
        "ratio": best["inferred"] / best["oracle"],
        "selector_s": fastest,
        "selector_share": fastest / (best["inferred"] - fastest),
        "selector_bytes": selector_bytes(inferring_layers(model).values()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="for every config")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", metavar="PATH", help="write the list of records here")
    args = p.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            record = measure(config, list(args.set), args.repeats, Path(tmp))
            records.append(record)
            print(json.dumps(record), file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    print(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Long streams: over 50 experiences with a growth at each one, does the training
step stay flat, and does memory grow only by the new experts?

    OMP_NUM_THREADS=1 python benchmarks/long_stream.py --json benchmarks/results/long_stream.json
    python benchmarks/long_stream.py --experiences 5          # quick look
    python benchmarks/long_stream.py train.batch_size=16      # any run-config override

Stream, model, optimizer and strategy are built from a run config (default
configs/permuted_digits_long.yaml) by ``lifelong.experiment.build_experiment``, with the
plugins a run uses.
Evaluation is reduced to the test split of the experience just trained, with no metrics
and no loggers: ``lifelong run`` evaluates the whole stream after each experience (50×50
experiences), which is not what is measured here.

Per experience, after its training:

- ``params``, ``trainable_params``: parameter counts; ``stages``, ``experts`` of the layers;
- ``param_bytes``, ``buffer_bytes``, ``optimizer_bytes``: bytes of the distinct storages
  behind the parameters, the buffers and the optimizer state (a view keeps its whole
  storage alive, so the storage is what is counted); ``frozen_optimizer_bytes``: state
  still held for parameters that no longer train (LazyAdamW drops it: should be 0);
- ``live_tensor_bytes``: every dense tensor the Python heap holds, to catch caches that
  accumulate outside the model and the optimizer;
- ``rss_bytes``: the process's resident memory (noisy: allocator, lazy imports);
- ``step_s``: median training-iteration time, from ``before_training_iteration`` to
  ``after_training_iteration`` (zero_grad, forward, backward, optimizer step, callbacks).

The summary compares the last experience with the first.

- ``step_ratio``: a ratio within one run, so a machine that is slower throughout slows both
  ends alike. Bursts of other processes do not, so the goal (<= 2.0) is judged on
  ``step_ratio_smoothed``, the median step of the last 5 experiences over the first 5.
- ``memory_ratio``: the growth of parameter + buffer + optimizer bytes over what growth must
  add, the new parameters plus AdamW's two moments for the change in trainable parameters.
  Goal: within 5 % (room for per-expert buffers such as the router mass, 1/(2·dim) of the
  expert bytes) and no optimizer state on frozen parameters.
- ``untracked_growth_bytes``: growth of all live tensors (gradients and the stream's data
  included) minus that of the model and the optimizer; ``rss_ratio``: RSS growth over the
  expected growth (secondary, noisy).
"""

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "permuted_digits_long.yaml"
MAX_STEP_RATIO = 2.0
MEMORY_TOLERANCE = 0.05
WINDOW = 5  # experiences at each end of the stream for the smoothed step ratio


class StepTimer(SupervisedPlugin):
    """Wall time of each training iteration of the current experience."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []
        self._start = 0.0

    def before_training_exp(self, strategy, *args, **kwargs):
        self.times = []

    def before_training_iteration(self, strategy, *args, **kwargs):
        self._start = time.perf_counter()

    def after_training_iteration(self, strategy, *args, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def storage_bytes(tensors, seen: set) -> int:
    """Bytes of the storages behind ``tensors`` not already in ``seen`` (which is updated).
    Sparse tensors (transient gradients) have no single storage and are skipped."""
    total = 0
    for t in tensors:
        if not isinstance(t, Tensor) or t.layout != torch.strided:
            continue
        storage = t.untyped_storage()
        key = (str(storage.device), storage.data_ptr())
        if key not in seen:
            seen.add(key)
            total += storage.nbytes()
    return total


def memory_sizes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    trainable_ids = {id(p) for p in trainable}
    live_state, frozen_state = [], []
    for p, state in optimizer.state.items():
        tensors = [v for v in state.values() if isinstance(v, Tensor)]
        (live_state if id(p) in trainable_ids else frozen_state).extend(tensors)
    seen = set()  # shared across the categories: nothing is counted twice
    sizes = dict(
        params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in trainable),
        param_bytes=storage_bytes(params, seen),
        # Per parameter, not per storage: trainable stages are views into the whole table.
        trainable_param_bytes=sum(p.numel() * p.element_size() for p in trainable),
        buffer_bytes=storage_bytes(model.buffers(), seen),
        optimizer_bytes=storage_bytes(live_state, seen),
        frozen_optimizer_bytes=storage_bytes(frozen_state, seen),
    )
    parts = ("param_bytes", "buffer_bytes", "optimizer_bytes", "frozen_optimizer_bytes")
    sizes["total_bytes"] = sum(sizes[k] for k in parts)
    return sizes


def live_tensor_bytes() -> int:
    """Bytes of the distinct storages of every tensor the garbage collector tracks."""
    gc.collect()
    with warnings.catch_warnings():  # isinstance() wakes deprecated lazy module attributes
        warnings.simplefilter("ignore")
        return storage_bytes([o for o in gc.get_objects() if isinstance(o, Tensor)], set())


def rss_bytes() -> int:
    """Current resident set size (Linux); the peak where /proc is absent."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def layer_sizes(model: torch.nn.Module) -> dict:
    layers = [m for m in model.modules() if hasattr(m, "num_stages")]
    return dict(
        stages=max((m.num_stages for m in layers), default=1),
        experts=sum(getattr(m, "num_experts", 0) for m in layers),
    )


def run_stream(cfg, *, evaluate: bool = True, log=None):
    """Train through the stream: (one record per experience, see the module docstring;
    the model; the optimizer)."""
    from lifelong.experiment import build_experiment

    timer = StepTimer()  # first, so the other plugins' before_training_iteration work is timed
    with warnings.catch_warnings():  # "no loggers": on purpose, nothing is logged
        warnings.simplefilter("ignore", UserWarning)
        exp = build_experiment(cfg, metrics=False, first_plugins=[timer])
    strategy, model, optimizer = exp.strategy, exp.model, exp.optimizer
    test_stream = exp.spec.benchmark.test_stream
    records = []
    for experience in exp.spec.benchmark.train_stream:
        strategy.train(experience)
        if evaluate:
            strategy.eval([test_stream[experience.current_experience]])
        record = dict(
            experience=experience.current_experience + 1,
            **layer_sizes(model),
            **memory_sizes(model, optimizer),
            live_tensor_bytes=live_tensor_bytes(),
            rss_bytes=rss_bytes(),
            iterations=len(timer.times),
            step_s=statistics.median(timer.times),
        )
        records.append(record)
        if log is not None:
            log(record)
    return records, model, optimizer


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def summarize(records: list[dict]) -> dict:
    first, last = records[0], records[-1]
    step_ratio = last["step_s"] / first["step_s"]
    # Other processes' bursts can slow a whole experience 2-3x on a shared machine; the
    # median over a window at each end ignores one such experience, and decides the goal.
    steps = [r["step_s"] for r in records]
    w = min(WINDOW, len(steps))
    smoothed = statistics.median(steps[-w:]) / statistics.median(steps[:w])
    grown = {k: last[k] - first[k] for k in ("param_bytes", "buffer_bytes", "optimizer_bytes")}
    growth = last["total_bytes"] - first["total_bytes"]
    # What growth must add: the new parameters and AdamW's exp_avg + exp_avg_sq for the
    # change in trainable parameters (the newest stage trains; older ones are frozen).
    expected = grown["param_bytes"] + 2 * (
        last["trainable_param_bytes"] - first["trainable_param_bytes"]
    )
    memory_ratio = growth / expected if expected > 0 else None
    frozen_state = max(r["frozen_optimizer_bytes"] for r in records)
    live_growth = last["live_tensor_bytes"] - first["live_tensor_bytes"]
    rss_growth = last["rss_bytes"] - first["rss_bytes"]
    return dict(
        experiences=len(records),
        stages=last["stages"],
        experts=[first["experts"], last["experts"]],
        step_s=[first["step_s"], last["step_s"]],
        step_ratio=step_ratio,
        step_ratio_smoothed=smoothed,
        # Also against the first grown experience: the first one still trains the query.
        step_ratio_vs_second=last["step_s"] / records[1]["step_s"] if len(records) > 1 else None,
        step_s_per_experience=_slope(
            [r["experience"] for r in records], [r["step_s"] for r in records]
        ),
        total_bytes=[first["total_bytes"], last["total_bytes"]],
        memory_growth_bytes=growth,
        expected_growth_bytes=expected,
        memory_ratio=memory_ratio,
        growth_bytes_by_kind=grown,
        max_frozen_optimizer_bytes=frozen_state,
        live_tensor_growth_bytes=live_growth,
        # Tensors that accumulate outside the model and the optimizer (caches, histories).
        untracked_growth_bytes=live_growth - growth,
        rss_growth_bytes=rss_growth,
        rss_ratio=rss_growth / expected if expected > 0 else None,
        step_pass=smoothed <= MAX_STEP_RATIO,
        memory_pass=(
            memory_ratio is not None
            and abs(memory_ratio - 1) <= MEMORY_TOLERANCE
            and frozen_state == 0
        ),
    )


def _print_record(r: dict):
    print(
        f"exp {r['experience']:3d}  stages {r['stages']:3d}  experts {r['experts']:7d}  "
        f"step {r['step_s'] * 1e3:7.2f} ms ({r['iterations']} it)  "
        f"model+opt {r['total_bytes'] / 2**20:7.2f} MiB  "
        f"live tensors {r['live_tensor_bytes'] / 2**20:7.2f} MiB  "
        f"RSS {r['rss_bytes'] / 2**20:7.1f} MiB",
        file=sys.stderr,
        flush=True,
    )


def main(argv=None):
    from lifelong.config import load_config

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("overrides", nargs="*", help="run-config overrides, key=value")
    p.add_argument("--config", default=str(CONFIG), help="run config (YAML)")
    p.add_argument("--experiences", type=int, help="stream length (stream.n_experiences)")
    p.add_argument("--no-eval", action="store_true", help="skip the per-experience evaluation")
    p.add_argument("--json", metavar="PATH", help="also write the result here")
    args = p.parse_args(argv)

    overrides = list(args.overrides)
    if args.experiences is not None:
        overrides.append(f"stream.n_experiences={args.experiences}")
    cfg = load_config(args.config, overrides)
    start = time.time()
    records, _, _ = run_stream(cfg, evaluate=not args.no_eval, log=_print_record)
    result = dict(
        config=Path(args.config).name,
        overrides=overrides,
        torch_threads=torch.get_num_threads(),
        wall_s=time.time() - start,
        summary=summarize(records),
        experiences=records,
    )
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PEER speed and memory: the fast layer against Algorithm 1 taken literally.

    python benchmarks/peer_speed.py --json peer_speed.json          # full (several minutes)
    python benchmarks/peer_speed.py --sizes 64 128 --steps 2        # quick look

Timings are the median of ``--steps`` steps after a warm-up step.

For each N = n² it measures forward tokens/s, training-step tokens/s (forward + backward +
optimizer step) and the process's peak resident memory, for

- ``fast``: ``lifelong.layers.PEER`` trained with ``lifelong.optim.LazyAdamW``;
- ``reference``: ``ReferencePEER`` (dense ``nn.Embedding`` tables) with ``torch.optim.Adam``;
- ``fast`` grown 16 times up to N (``grown: true``), whose old experts are frozen;
- with ``--moments fp32 bf16 rowwise bf16_rowwise``, ``fast`` once per ``LazyAdamW``
  moments option (the expert tables' optimizer state in float32, bfloat16, one second
  moment per row, or both savings).

Every configuration runs in a fresh subprocess so that peak RSS belongs to it alone. Each
record also carries ``baseline_rss_bytes``, the process's peak after one training step of
the same code at N = topk² (imports, optimizer machinery and workspaces: about 0.65 GiB with
a CUDA build of torch), so the memory that grows with N is
``peak_rss_bytes - baseline_rss_bytes``. Prints one JSON record per (impl, N, grown, mode)
and a readable table on stderr.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _median_seconds(fn, steps: int) -> float:
    """Median wall time of ``steps`` calls: robust to the spikes of a shared machine."""
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _build(impl: str, n: int, grown: bool, args, moments: str = "fp32"):
    import torch

    from lifelong.layers import PEER, ReferencePEER
    from lifelong.optim import LazyAdamW

    sizes = dict(heads=args.heads, topk=args.topk, key_dim=args.key_dim)
    if impl == "reference":
        layer = ReferencePEER(args.dim, num_experts=n * n, **sizes)
        return layer, torch.optim.Adam(layer.parameters(), lr=1e-3)
    if grown:
        step = n // (args.growths + 1)
        layer = PEER(
            args.dim, num_experts=(n - args.growths * step) ** 2, sparse_grad=True, **sizes
        )
        for _ in range(args.growths):
            layer.grow(step)
        assert layer.num_sub_keys == n
    else:
        layer = PEER(args.dim, num_experts=n * n, sparse_grad=True, **sizes)
    return layer, LazyAdamW(layer.parameters(), lr=1e-3, moments=moments)


def run_one(impl: str, n: int, grown: bool, args, moments: str = "fp32") -> list[dict]:
    """Measure one configuration in this process; returns forward and train records."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(args.tokens, args.dim)
    # Baseline: the same code path at the smallest size loads every library and workspace
    # it needs (torch's optimizer machinery alone is ~150 MiB), so the difference to the
    # peak is the memory that grows with N.
    tiny, tiny_opt = _build(impl, args.topk, False, args, moments)
    tiny(x).pow(2).mean().backward()
    tiny_opt.step()
    del tiny, tiny_opt
    baseline = _peak_rss_bytes()

    layer, opt = _build(impl, n, grown, args, moments)
    records = []
    base = dict(
        impl=impl, num_experts=n * n, grown=grown, moments=moments, baseline_rss_bytes=baseline
    )

    with torch.no_grad():
        layer(x)  # warm-up
        dt = _median_seconds(lambda: layer(x), args.steps)
    records.append(
        dict(base, mode="forward", tokens_per_s=args.tokens / dt, peak_rss_bytes=_peak_rss_bytes())
    )

    def train_step():
        y = layer(x)
        loss = y.pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    train_step()  # warm-up: allocates optimizer state
    dt = _median_seconds(train_step, args.steps)
    records.append(
        dict(base, mode="train", tokens_per_s=args.tokens / dt, peak_rss_bytes=_peak_rss_bytes())
    )
    return records


def expert_bytes(n: int, dim: int) -> int:
    return 2 * n * n * dim * 4  # u and v tables, float32


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[128, 256, 512, 1024],
        help="sub-keys per side n (N = n²)",
    )
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--key-dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--topk", type=int, default=16)
    p.add_argument("--tokens", type=int, default=1024, help="tokens per batch")
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement (median)")
    p.add_argument(
        "--no-thp",
        action="store_true",
        help="do not ask PyTorch's CPU allocator for transparent huge pages",
    )
    p.add_argument("--growths", type=int, default=16, help="growths of the grown layer")
    p.add_argument("--impl", choices=["fast", "reference", "both"], default="both")
    p.add_argument(
        "--moments",
        nargs="+",
        choices=["fp32", "bf16", "rowwise", "bf16_rowwise"],
        default=["fp32"],
        help="LazyAdamW moments of the fast layer, one run per option",
    )
    p.add_argument("--json", metavar="PATH", help="write the list of records here")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: impl,n,grown in this process
    args = p.parse_args(argv)

    if args.one:
        impl, n, grown, moments = args.one.split(",")
        print(json.dumps(run_one(impl, int(n), grown == "1", args, moments)))
        return 0

    configs = []
    for n in args.sizes:
        if args.impl in ("fast", "both"):
            configs += [("fast", n, False, moments) for moments in args.moments]
        if args.impl in ("reference", "both"):
            configs.append(("reference", n, False, "fp32"))
    if args.impl in ("fast", "both"):
        configs.append(("fast", max(args.sizes), True, args.moments[0]))

    passthrough = [
        f"--dim={args.dim}",
        f"--key-dim={args.key_dim}",
        f"--heads={args.heads}",
        f"--topk={args.topk}",
        f"--tokens={args.tokens}",
        f"--steps={args.steps}",
        f"--growths={args.growths}",
    ]
    records = []
    for impl, n, grown, moments in configs:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            f"--one={impl},{n},{int(grown)},{moments}",
            *passthrough,
        ]
        env = dict(os.environ)
        if not args.no_thp:
            # Random rows of GiB-sized tables miss the TLB on 4 KiB pages; PyTorch's CPU
            # allocator madvises huge pages for large tensors when this is set.
            env.setdefault("THP_MEM_ALLOC_ENABLE", "1")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        recs = json.loads(out.strip().splitlines()[-1])
        records.extend(recs)
        for r in recs:
            net = (r["peak_rss_bytes"] - r["baseline_rss_bytes"]) / expert_bytes(n, args.dim)
            print(
                f"{impl:9s} N={n}^2 grown={int(grown)} {moments:7s} {r['mode']:7s} "
                f"{r['tokens_per_s']:8.0f} tok/s  peak RSS {r['peak_rss_bytes'] / 2**30:6.2f} GiB "
                f"(above baseline: {net:.2f}x expert bytes)",
                file=sys.stderr,
                flush=True,
            )
    text = json.dumps(records, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

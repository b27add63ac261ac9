"""PEER across ranks: data-parallel and expert-sharded training steps, measured with gloo
on this machine, and the communication they would need at 16M-256M experts.

    python benchmarks/dist_scaling.py --json dist_scaling.json             # full (minutes)
    python benchmarks/dist_scaling.py --sizes 64 128 --steps 2 --tokens 256  # quick look

For each N = n² it times a training step (forward, backward, gradient exchange, LazyAdamW
step; median of ``--steps`` after a warm-up) of one PEER layer on a global batch of
``--tokens`` tokens, each process on one thread:

- ``single``: one process, the whole batch;
- ``ddp``: 2 ranks, each with a full copy of the layer and half the batch, gradients
  summed as ``lifelong run`` under torchrun sums them (``lifelong.parallel``): dense ones
  all-reduced, the row-sparse expert gradients all-gathered;
- ``sharded``: 2 ranks of ``ShardedPEER``: each holds half the expert rows and fetches the
  rows its tokens retrieved from their owner (``lifelong.layers.row_exchange``).

Each record has tokens/s, the bytes this rank sent per step (counted from the tensors
handed to torch.distributed; a ring all-reduce sends 2(W-1)/W of the tensor, a ring
all-gather W-1 times the rank's part), the expert and optimizer bytes each rank holds, and
its peak RSS. ``ddp_dense_bytes`` is what DDP with dense expert gradients would all-reduce.

Projection: the unique rows a batch retrieves are counted on real batches (text_domains
windows through the text model's blocks, at this --dim) for every N measured; the
communication per step for 16M-256M experts on 8-64 ranks follows from them (docs/scaling.md
gives the formulas and assumptions). Prints JSON (also to ``--json``) and the tables of
docs/scaling.md on stderr (``--markdown dist_scaling.json`` prints them again).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

FLOAT = 4  # bytes per float32 weight
INDEX = 8  # bytes per int64 row id


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _options(args) -> dict:
    return dict(heads=args.heads, topk=args.topk, key_dim=args.key_dim, sparse_grad=True)


def _ring_allreduce_bytes(nbytes: int, world: int) -> int:
    return 2 * (world - 1) * nbytes // world


def _sync_replicated(layer, world: int) -> int:
    """Sum the gradients over the ranks as a data-parallel run does
    (``lifelong.parallel.sync_gradients``: dense ones all-reduced, row-sparse ones
    all-gathered, each rank's rows padded to the most any rank has); returns the bytes this
    rank sends."""
    from lifelong.parallel import sync_gradients

    params = [p for p in layer.parameters() if p.grad is not None]
    dense = sum(p.grad.numel() * p.grad.element_size() for p in params if not p.grad.is_sparse)
    sparse = [p for p in params if p.grad.is_sparse]
    rows = torch.tensor([p.grad.coalesce().values().shape[0] for p in sparse], dtype=torch.long)
    dist.all_reduce(rows, op=dist.ReduceOp.MAX)
    sent = _ring_allreduce_bytes(dense, world)
    for p, most in zip(sparse, rows.tolist(), strict=True):
        sent += (world - 1) * most * (INDEX + p.shape[1] * p.element_size())
    sync_gradients(list(layer.parameters()))
    return sent


def _sync_sharded(layer, world: int) -> int:
    """Sum the replicated parameters' gradients; the shard's arrived with the backward."""
    sent = 0
    for name, p in layer.named_parameters():
        if p.grad is not None and not name.startswith(("down", "up")):
            dist.all_reduce(p.grad)
            sent += _ring_allreduce_bytes(p.grad.numel() * p.grad.element_size(), world)
    return sent


def _held_bytes(layer, opt) -> int:
    tables = sum(t.numel() * t.element_size() for t in (layer._down, layer._up))
    state = sum(
        v.numel() * v.element_size()
        for s in opt.state.values()
        for v in s.values()
        if torch.is_tensor(v)
    )
    return tables + state


def measure(rank: int, world: int, mode: str, n: int, args) -> dict:
    """Time ``mode`` at N = n² on this rank (the process group is up if world > 1)."""
    from lifelong.layers import PEER
    from lifelong.layers.sharded_peer import ShardedPEER
    from lifelong.optim import LazyAdamW

    torch.manual_seed(0)
    x_all = torch.randn(args.tokens, args.dim)
    part = args.tokens // world
    x = x_all[rank * part : (rank + 1) * part]
    build = ShardedPEER if mode == "sharded" else PEER
    layer = build(args.dim, num_experts=n * n, **_options(args))
    opt = LazyAdamW(layer.parameters(), lr=1e-3)
    sent = []

    def step():
        exchanged = getattr(layer, "exchanged_bytes", 0)
        layer(x).pow(2).mean().backward()
        bytes_sent = 0
        if mode == "ddp":
            bytes_sent = _sync_replicated(layer, world)
        elif mode == "sharded":
            bytes_sent = _sync_sharded(layer, world) + layer.exchanged_bytes - exchanged
        opt.step()
        opt.zero_grad(set_to_none=True)
        sent.append(bytes_sent)

    step()  # warm-up: optimizer state
    times = []
    for _ in range(args.steps):
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    return dict(
        mode=mode,
        world=world,
        num_experts=n * n,
        tokens=args.tokens,
        tokens_per_s=args.tokens / dt,
        bytes_sent_per_step=statistics.median(sent[1:]),
        ddp_dense_bytes=_ring_allreduce_bytes(2 * n * n * args.dim * FLOAT, 2),
        held_bytes=_held_bytes(layer, opt),
        expert_bytes=2 * n * n * args.dim * FLOAT,
        peak_rss_bytes=_peak_rss_bytes(),
    )


def _rank_main(rank: int, world: int, store: str, out: str, mode: str, n: int, args):
    torch.set_num_threads(1)
    # Avalanche refuses to build its loggers in a rank > 0 once a process group is up, and
    # lifelong.parallel imports it: import before the group starts.
    import lifelong.parallel  # noqa: F401

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        record = measure(rank, world, mode, n, args)
        with open(f"{out}.{rank}", "w") as f:
            json.dump(record, f)
        dist.barrier()  # every rank done before any tears the group down
    finally:
        dist.destroy_process_group()
    # gloo can abort in interpreter teardown after a clean destroy (a busy machine, no
    # Python frame); the record is written: skip the teardown.
    os._exit(0)


def run_mode(mode: str, n: int, args) -> list[dict]:
    """One record per rank. Every mode runs in fresh processes (``single`` as a world of
    one), so that each peak RSS is that configuration's: a process keeps the peak of the
    process it was forked from."""
    world = 1 if mode == "single" else 2
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "record")
        store = os.path.join(tmp, "store")
        mp.spawn(_rank_main, args=(world, store, out, mode, n, args), nprocs=world)
        return [json.load(open(f"{out}.{r}")) for r in range(world)]


def unique_rows_on_text(args) -> list[dict]:
    """Distinct expert rows a batch of ``--tokens`` real tokens retrieves, per N: the
    inputs of the text model's expert block on text_domains windows, through a PEER layer
    of each size (random init, so routing is not yet concentrated by training)."""
    from lifelong.cli import resolve_config
    from lifelong.config import load_config
    from lifelong.experiment import build_model, build_stream_from_config
    from lifelong.layers import PEER

    cfg = load_config(
        resolve_config("text_domains"),
        [f"model.dim={args.dim}", f"stream.train_sequences={max(64, args.tokens // 64)}"],
    )
    torch.manual_seed(0)
    spec = build_stream_from_config(cfg)
    model = build_model(cfg, spec)
    inputs = []
    growing = next(m for m in model.modules() if isinstance(m, PEER))
    handle = growing.register_forward_pre_hook(lambda mod, a: inputs.append(a[0].detach()))
    windows = spec.benchmark.train_stream[0].dataset
    seq = next(iter(torch.utils.data.DataLoader(windows, batch_size=len(windows))))[0]
    batch = seq[: max(1, args.tokens // seq.shape[1])]
    with torch.no_grad():
        model(batch, torch.zeros(batch.shape[0], dtype=torch.long))  # the first domain's stage
    handle.remove()
    tokens = inputs[0].reshape(-1, args.dim)[: args.tokens]
    records = []
    for n in args.sizes:
        torch.manual_seed(0)
        layer = PEER(args.dim, num_experts=n * n, **_options(args))
        with torch.no_grad():
            _, idx = layer.retrieve(tokens)
        records.append(
            dict(
                num_experts=n * n,
                tokens=tokens.shape[0],
                retrievals=idx.numel(),
                unique_rows=int(idx.unique().numel()),
            )
        )
    return records


def project(unique: list[dict], args) -> list[dict]:
    """Bytes one rank sends per step at 16M-256M experts on 8-64 ranks, for ``--tokens``
    tokens per rank: its retrievals R = tokens·heads·topk touch U distinct rows, U taken
    as the measured fraction U/R at the largest N (it only rises with N) and as R itself
    (every retrieval distinct: the bound)."""
    largest = max(unique, key=lambda r: r["num_experts"])
    retrievals = args.tokens * args.heads * args.topk
    row = 2 * args.dim * FLOAT  # u and v of one expert
    out = []
    for experts in (16 * 2**20, 64 * 2**20, 256 * 2**20):
        for world in (8, 16, 32, 64):
            for label, u in (
                ("measured", retrievals * largest["unique_rows"] / largest["retrievals"]),
                ("bound", retrievals),
            ):
                remote = u * (world - 1) / world  # rows owned elsewhere, owners uniform
                out.append(
                    dict(
                        num_experts=experts,
                        world=world,
                        unique_rows=label,
                        # ids out, rows in (sent by owners: the same amount by symmetry),
                        # gradients back
                        sharded_bytes=int(remote * (INDEX + 2 * row)),
                        ddp_sparse_bytes=int((world - 1) * u * (INDEX + row)),
                        ddp_dense_bytes=_ring_allreduce_bytes(experts * row, world),
                        expert_bytes_per_rank_sharded=experts * row // world,
                    )
                )
    return out


def markdown(result: dict) -> str:
    """The three tables of docs/scaling.md: steps (rank 0), unique rows, projection."""
    gib, mib = 2**30, 2**20
    lines = ["| N | mode | train tok/s | sent / step / rank | held / rank | peak RSS / rank |"]
    lines.append("|---|---|---|---|---|---|")
    seen = set()
    for r in result["steps"]:
        key = (r["num_experts"], r["mode"])
        if key in seen:
            continue  # one line per configuration: rank 0's
        seen.add(key)
        n = round(r["num_experts"] ** 0.5)
        lines.append(
            f"| {n}² | {r['mode']} | {r['tokens_per_s']:,.0f} | "
            f"{r['bytes_sent_per_step'] / mib:.1f} MiB | {r['held_bytes'] / gib:.2f} GiB | "
            f"{r['peak_rss_bytes'] / gib:.2f} GiB |"
        )
    lines += ["", "| N | retrievals | distinct rows U | U / retrievals |", "|---|---|---|---|"]
    for u in result["unique_rows"]:
        n = round(u["num_experts"] ** 0.5)
        share = u["unique_rows"] / u["retrievals"]
        lines.append(f"| {n}² | {u['retrievals']:,} | {u['unique_rows']:,} | {share:.2f} |")
    lines += [
        "",
        "| N | ranks | expert tables per rank, sharded | sharded | DDP sparse | DDP dense |",
        "|---|---|---|---|---|---|",
    ]
    bound = {
        (r["num_experts"], r["world"]): r
        for r in result["projection"]
        if r["unique_rows"] == "bound"
    }
    for r in result["projection"]:
        if r["unique_rows"] != "measured":
            continue
        b = bound[r["num_experts"], r["world"]]
        lines.append(
            f"| {r['num_experts'] // mib}M | {r['world']} | "
            f"{r['expert_bytes_per_rank_sharded'] / gib:.1f} GiB | "
            f"{r['sharded_bytes'] / mib:,.0f} MiB ({b['sharded_bytes'] / mib:,.0f}) | "
            f"{r['ddp_sparse_bytes'] / mib:,.0f} MiB ({b['ddp_sparse_bytes'] / mib:,.0f}) | "
            f"{r['ddp_dense_bytes'] / gib:,.0f} GiB |"
        )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--key-dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--topk", type=int, default=16)
    p.add_argument("--tokens", type=int, default=1024, help="global batch, tokens")
    p.add_argument("--steps", type=int, default=5, help="timed steps (median)")
    p.add_argument("--modes", nargs="+", default=["single", "ddp", "sharded"])
    p.add_argument("--json", metavar="PATH", help="write the records here")
    p.add_argument("--markdown", metavar="JSON", help="print the tables of a --json file and stop")
    args = p.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as f:
            print(markdown(json.load(f)))
        return 0
    if args.tokens % 2:
        p.error(f"--tokens={args.tokens} must be even: 2 ranks take half each")

    steps = []
    for n in args.sizes:
        for mode in args.modes:
            recs = run_mode(mode, n, args)
            steps.extend(recs)
            r = recs[0]
            print(
                f"N={n}^2 {mode:8s} {r['tokens_per_s']:8.0f} tok/s  "
                f"sent {r['bytes_sent_per_step'] / 2**20:8.2f} MiB/step  "
                f"held {r['held_bytes'] / 2**20:8.1f} MiB  "
                f"peak RSS {r['peak_rss_bytes'] / 2**30:5.2f} GiB",
                file=sys.stderr,
                flush=True,
            )
    unique = unique_rows_on_text(args)
    result = dict(steps=steps, unique_rows=unique, projection=project(unique, args))
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(result, indent=1))
    print(json.dumps(result))
    print(markdown(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Gradients summed over the ranks after each backward, dense and row-sparse alike.

Each rank's loss is its share of the whole batch's loss (``DataParallelPlugin``), so the sum
of the ranks' gradients is the gradient one process computes on the whole batch.

- Dense gradients go through one all-reduce per dtype, flattened into one buffer.
- Row-sparse gradients (PEER's expert tables with ``sparse_grad=True``: a COO tensor of the
  rows a rank's slice retrieved) are gathered from every rank, in rank order, and coalesced:
  every rank then holds the same rows with the same values, so ``LazyAdamW`` updates the
  same rows, and keeps the same lazy per-row state, on every rank. A dense all-reduce of
  such a gradient would cost the whole table per step.
- A parameter whose gradient is None on some ranks (no row of their slice reached it, e.g.
  the head of a task only another rank's slice holds) gets zeros there; it keeps None only
  where it is None on every rank, as in one process, where AdamW then skips it (no decay,
  no step).
"""

import torch
import torch.distributed as dist
from torch import Tensor, nn

NONE, DENSE, SPARSE = 0, 1, 2


def _kind(grad: Tensor | None) -> int:
    return NONE if grad is None else SPARSE if grad.is_sparse else DENSE


def sync_gradients(params: list[nn.Parameter]) -> None:
    """Replace each parameter's gradient by its sum over the ranks (every rank must call
    this with the same parameters in the same order)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    device = params[0].device
    kinds = torch.tensor([_kind(p.grad) for p in params], dtype=torch.long, device=device)
    dist.all_reduce(kinds, op=dist.ReduceOp.MAX)  # a gradient anywhere: a gradient everywhere
    dense = [p for p, k in zip(params, kinds.tolist(), strict=True) if k == DENSE]
    sparse = [p for p, k in zip(params, kinds.tolist(), strict=True) if k == SPARSE]
    for dtype in sorted({p.dtype for p in dense}, key=str):
        _sum_dense([p for p in dense if p.dtype == dtype])
    if sparse:
        _sum_sparse(sparse)


def _sum_dense(params: list[nn.Parameter]) -> None:
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    start = 0
    for p in params:
        p.grad = flat[start : start + p.numel()].view_as(p)
        start += p.numel()


def _sum_sparse(params: list[nn.Parameter]) -> None:
    world = dist.get_world_size()
    parts = []
    for p in params:
        grad = p.grad.coalesce() if p.grad is not None else None
        if grad is None:  # this rank's slice never reached it: no rows
            indices = torch.zeros(1, 0, dtype=torch.long, device=p.device)
            values = p.new_zeros(0, *p.shape[1:])
        else:
            indices, values = grad.indices(), grad.values()
        parts.append((indices, values))
    # How many rows each rank holds for each parameter, then every rank's rows padded to
    # the largest count (all_gather takes equal shapes).
    counts = torch.tensor([v.shape[0] for _, v in parts], dtype=torch.long, device=params[0].device)
    every = [torch.empty_like(counts) for _ in range(world)]
    dist.all_gather(every, counts)
    every = torch.stack(every).tolist()  # [rank][param]
    for j, (p, (indices, values)) in enumerate(zip(params, parts, strict=True)):
        sizes = [every[r][j] for r in range(world)]
        most = max(sizes)
        pad = most - values.shape[0]
        indices = torch.cat([indices, indices.new_zeros(indices.shape[0], pad)], dim=1)
        values = torch.cat([values, values.new_zeros(pad, *values.shape[1:])])
        all_indices = [torch.empty_like(indices) for _ in range(world)]
        all_values = [torch.empty_like(values) for _ in range(world)]
        dist.all_gather(all_indices, indices.contiguous())
        dist.all_gather(all_values, values.contiguous())
        rows = torch.cat([i[:, :n] for i, n in zip(all_indices, sizes, strict=True)], dim=1)
        vals = torch.cat([v[:n] for v, n in zip(all_values, sizes, strict=True)])
        p.grad = torch.sparse_coo_tensor(rows, vals, p.shape, check_invariants=False).coalesce()

"""PKM's value readout, ``y[m] = Σ_j w[m, j] · values[idx[m, j]]``, with row-sparse gradients.

The forward pass is one ``embedding_bag`` with per-sample weights, as in the PKM code of
Lample et al. (2019). Autograd through ``embedding_bag`` would give a dense (N, d) gradient
of the values; here the gradient holds only the retrieved rows, so a training step does not
grow with N (the same scheme as ``expert_mix``).
"""

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .sparse_rows import RowGroups, row_dots


class _ValueReadout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, idx, weights, values, bounds, sparse_grad, *chunks):
        ctx.save_for_backward(idx, weights)
        ctx.values, ctx.bounds, ctx.sparse_grad = values, bounds, sparse_grad
        return F.embedding_bag(idx, values, per_sample_weights=weights, mode="sum")  # (M, d)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        idx, weights = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        needs = ctx.needs_input_grad
        grad_w = row_dots(ctx.values, idx, grad_y) if needs[1] else None  # (M, K)
        n_chunks = len(ctx.bounds) - 1
        chunk_grads = [None] * n_chunks
        for c in range(n_chunks):
            if not needs[5 + c]:
                continue
            lo, hi = ctx.bounds[c], ctx.bounds[c + 1]
            groups = RowGroups(idx, lo, hi if hi < ctx.bounds[-1] else None)
            if groups.rows is None:
                continue
            scatter = groups.sparse if ctx.sparse_grad else groups.dense
            chunk_grads[c] = scatter(groups.sums(weights, grad_y), lo, hi - lo)
        return (None, grad_w, None, None, None, *chunk_grads)


def value_readout(
    idx: Tensor,
    weights: Tensor,
    *,
    values: Tensor,
    chunks: list[Tensor],
    bounds: tuple[int, ...],
    sparse_grad: bool,
) -> Tensor:
    """idx, weights (M, K) -> (M, d). ``values`` (N, d) is the row-wise concatenation of
    ``chunks`` (the Parameters that receive gradients), chunk c holding rows
    ``[bounds[c], bounds[c+1])``."""
    assert idx.shape == weights.shape and len(chunks) == len(bounds) - 1
    # Under autocast the gates may arrive in bf16 while the values are fp32 (expert_mix).
    weights = weights.to(values.dtype)
    with torch.autocast(idx.device.type, enabled=False):
        return _ValueReadout.apply(idx, weights, values, bounds, sparse_grad, *chunks)

"""Mixing singleton experts with a gather/scatter whose cost follows the experts touched.

PEER (He 2024, Algorithm 1) computes, for every token m and retrieved expert j,

    h[m, j] = u[idx[m, j]] · x[m]                    (down projection, one neuron)
    y[m]    = Σ_j w[m, j] · σ(h[m, j]) · v[idx[m, j]]   (weighted up projection)

Algorithm 1 taken literally gathers (M, K, d) weight tensors and lets autograd produce a
dense (N, d) gradient for each table, so a training step reads and writes memory
proportional to N. Here the forward and backward passes only touch the M·K rows that were
retrieved, and the expert gradients come out row-sparse:

- weighted sums of rows use ``embedding_bag`` (no (M, K, d) tensor is materialised);
- row dot products are computed in token blocks that stay in cache;
- the gradient of a table row r is Σ over the (m, j) with idx[m, j] = r of a scalar times a
  token vector, i.e. another weighted bag, over the tokens grouped by expert.
"""

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .activations import Activation
from .sparse_rows import RowGroups, row_dots


class _ExpertMix(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, idx, weights, down, up, spans, activation, sparse_grad, *chunks):
        pre = row_dots(down, idx, x)  # (M, K)
        y = F.embedding_bag(
            idx, up, per_sample_weights=weights * activation.forward(pre), mode="sum"
        )
        ctx.save_for_backward(x, idx, weights, pre)
        ctx.tables = (down, up)
        ctx.spans, ctx.activation, ctx.sparse_grad = spans, activation, sparse_grad
        return y  # (M, d)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, idx, weights, pre = ctx.saved_tensors
        down, up = ctx.tables
        needs = ctx.needs_input_grad
        grad_y = grad_y.contiguous()
        a = ctx.activation.forward(pre)
        grad_aw = row_dots(up, idx, grad_y)  # (M, K): d y / d (w * a)
        grad_w = grad_aw * a if needs[2] else None
        grad_pre = ctx.activation.backward(grad_aw * weights, pre)  # (M, K)
        grad_x = None
        if needs[0]:
            grad_x = F.embedding_bag(idx, down, per_sample_weights=grad_pre, mode="sum")

        # Expert tables: chunk c covers rows spans[c] = [lo, hi) of both tables; the first
        # half of `chunks` are down chunks, the second half up chunks.
        n_chunks, rows = len(ctx.spans), down.shape[0]
        chunk_grads = [None] * (2 * n_chunks)
        for c, (lo, hi) in enumerate(ctx.spans):
            need_down, need_up = needs[8 + c], needs[8 + n_chunks + c]
            if not (need_down or need_up):
                continue
            groups = RowGroups(idx, lo, hi if hi < rows else None)
            if groups.rows is None:
                continue  # no lookup hit this chunk: no gradient, no optimizer update
            scatter = groups.sparse if ctx.sparse_grad else groups.dense
            # grad table[r] = Σ_{(m, j): idx[m, j] = r} coeff[m, j] · vec[m]
            if need_down:
                chunk_grads[c] = scatter(groups.sums(grad_pre, x), lo, hi - lo)
            if need_up:
                chunk_grads[n_chunks + c] = scatter(groups.sums(weights * a, grad_y), lo, hi - lo)
        return (grad_x, None, grad_w, None, None, None, None, None, *chunk_grads)


def expert_mix(
    x: Tensor,
    idx: Tensor,
    weights: Tensor,
    *,
    down: Tensor,
    up: Tensor,
    down_chunks: list[Tensor],
    up_chunks: list[Tensor],
    spans: list[tuple[int, int]],
    activation: Activation,
    sparse_grad: bool,
) -> Tensor:
    """``y[m] = Σ_j weights[m, j] · act(down[idx[m, j]] · x[m]) · up[idx[m, j]]``.

    Args:
        x: (M, d) tokens. idx: (M, K) expert ids. weights: (M, K) router weights.
        down, up: (N, d) tables read by the computation.
        activation: σ with its backward (``activations.ACTIVATIONS``).
        down_chunks, up_chunks: the tensors that receive the gradients of table rows
            ``spans[c] = (lo, hi)``; each holds the values of those rows. Chunks that need no
            gradient (frozen stages) may be left out.
        sparse_grad: chunk gradients as coalesced sparse COO tensors (only the retrieved
            rows) instead of dense tensors.

    Returns:
        (M, d).
    """
    assert x.dim() == 2 and idx.shape == weights.shape and idx.shape[0] == x.shape[0]
    assert len(down_chunks) == len(up_chunks) == len(spans)
    # Under autocast the tokens and gates may arrive in bf16 while the tables are fp32: the
    # sparse expert arithmetic runs in the tables' dtype with autocast off.
    x, weights = x.to(down.dtype), weights.to(down.dtype)
    with torch.autocast(x.device.type, enabled=False):
        y = _ExpertMix.apply(
            x,
            idx,
            weights,
            down,
            up,
            tuple(spans),
            activation,
            sparse_grad,
            *down_chunks,
            *up_chunks,
        )
    assert y.shape == x.shape
    return y

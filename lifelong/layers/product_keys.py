"""Product-key retrieval (Lample et al. 2019; He 2024, "Mixture of A Million Experts" §2).

A product key is the concatenation ``[c1[i1]; c2[i2]]`` of one sub-key from each of two
sub-key sets. Because ``q·[c1; c2] = q1·c1 + q2·c2``, the exact top-k over all ``n²`` product
keys lies inside the Cartesian product of the top-k of each half, so retrieval costs
O((n + k²)·d) instead of O(n²·d).

Expert ids use *shell order* rather than the paper's ``i1·n + i2``: the pair (i1, i2) with
``s = max(i1, i2)`` gets an id in ``[s², (s+1)²)``. Every prefix square ``[0, n_s)²`` of
sub-keys then owns exactly the ids ``[0, n_s²)``, so growing the sub-key sets from n to n+m
appends experts ``[n², (n+m)²)`` without renumbering any old expert. This is what lets the
expert tables grow by appending, and a growth stage be an id prefix.
"""

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .sparse_rows import RowGroups

# Scores per block of the sub-key search: 2**20 floats (4 MiB).
_BLOCK_SCORES = 1 << 20


def pair_to_id(i1: Tensor, i2: Tensor) -> Tensor:
    """Shell-order id of the sub-key pair (i1, i2); any matching shapes."""
    s = torch.maximum(i1, i2)
    # On the shell's row i1 == s the offset is i2 (0..s); on its column it is s+1+i1.
    return s * s + torch.where(i1 == s, i2, s + 1 + i1)


def id_to_pair(ids: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`pair_to_id`."""
    s = torch.sqrt(ids.double()).floor().long()
    # Guard against floating-point rounding of the square root at perfect squares.
    s = s - (s * s > ids).long() + ((s + 1) * (s + 1) <= ids).long()
    r = ids - s * s
    on_row = r <= s
    i1 = torch.where(on_row, s, r - s - 1)
    i2 = torch.where(on_row, r, s)
    return i1, i2


class _SubKeyTopK(torch.autograd.Function):
    """Top-k of ``q @ keys.T`` with a backward pass that touches only the k winners.

    Autograd through ``matmul`` + ``topk`` would scatter the k gradients into a dense
    (rows, n) matrix and run two more dense GEMMs over all n sub-keys. Only k entries per
    row are non-zero, so the gradient is a k-row gather (for q) and a k-row scatter (for the
    keys): the backward pass does not grow with n.
    """

    @staticmethod
    def forward(ctx, q: Tensor, keys: Tensor, k: int, limit: Tensor | None):
        R = q.shape[0]
        values = q.new_empty(R, k)
        idx = torch.empty(R, k, dtype=torch.long, device=q.device)
        cols = torch.arange(keys.shape[0], device=q.device)
        # Row blocks keep the (rows, n) score matrix small enough to stay in cache.
        block = max(1, _BLOCK_SCORES // keys.shape[0])
        for start in range(0, R, block):
            stop = min(R, start + block)
            scores = q[start:stop] @ keys.t()  # (B, n)
            if limit is not None:
                # Per-row stage restriction: sub-keys at or beyond limit[r] do not exist.
                scores.masked_fill_(cols >= limit[start:stop, None], float("-inf"))
            torch.topk(scores, k, dim=-1, out=(values[start:stop], idx[start:stop]))
        ctx.save_for_backward(q, keys, idx)
        ctx.mark_non_differentiable(idx)
        return values, idx

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_values: Tensor, _grad_idx):
        q, keys, idx = ctx.saved_tensors
        grad_q = grad_keys = None
        if ctx.needs_input_grad[0]:
            # grad_q[r] = sum_j grad_values[r, j] * keys[idx[r, j]]: a weighted bag of rows.
            grad_q = F.embedding_bag(
                idx, keys, per_sample_weights=grad_values, mode="sum"
            )  # (R, dk)
        if ctx.needs_input_grad[1]:
            # grad_keys[c] = Σ_{(r, j): idx[r, j] = c} grad_values[r, j] * q[r]
            groups = RowGroups(idx)
            grad_keys = groups.dense(groups.sums(grad_values, q), 0, keys.shape[0])
        return grad_q, grad_keys, None, None


def product_key_topk(
    q: Tensor, keys1: Tensor, keys2: Tensor, k: int, limit: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Exact top-k over the product keys ``[keys1[i1]; keys2[i2]]``.

    Args:
        q: (R, dk) queries; the first half is scored against ``keys1``, the second against
            ``keys2``.
        keys1, keys2: (n, dk/2) sub-key sets.
        k: experts to return per row (k <= n).
        limit: optional (R,) number of sub-keys per side that row r may use; the row then
            searches only the prefix square ``[0, limit[r])²``, i.e. the experts
            ``[0, limit[r]²)``.

    Returns:
        scores (R, k) sorted descending and the shell-order expert ids (R, k).
    """
    half = keys1.shape[1]
    assert q.shape[1] == 2 * half, (q.shape, keys1.shape)
    # Under autocast the query arrives in bf16 while the keys stay fp32: the search runs in
    # the keys' dtype with autocast off, so the ranking and its gradients are the keys'.
    q = q.to(keys1.dtype)
    with torch.autocast(q.device.type, enabled=False):
        s1, i1 = _SubKeyTopK.apply(q[:, :half], keys1, k, limit)  # (R, k)
        s2, i2 = _SubKeyTopK.apply(q[:, half:], keys2, k, limit)  # (R, k)
    # Any product key in the overall top-k has both halves in their per-side top-k.
    cand = (s1.unsqueeze(2) + s2.unsqueeze(1)).flatten(1)  # (R, k*k)
    scores, best = cand.topk(k, dim=-1)  # (R, k)
    ids = pair_to_id(i1.gather(1, best // k), i2.gather(1, best % k))
    assert scores.shape == ids.shape == (q.shape[0], k)
    return scores, ids

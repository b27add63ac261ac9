"""Row-sparse gather/scatter helpers shared by product-key retrieval and expert mixing.

Both backward passes need ``grad[r] = Σ_{(i, j): idx[i, j] = r} coeff[i, j] · vec[i]`` for
the rows r that were retrieved. Grouping the lookups by row turns that into one
``embedding_bag`` (a weighted bag of ``vec`` rows per table row), which never materialises
the (R, k, d) outer products that ``index_add`` would need.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

# Rows per block in the gathered dot products: 2**20 floats (4 MiB) keeps a block in cache.
_BLOCK_FLOATS = 1 << 20


def row_dots(table: Tensor, idx: Tensor, x: Tensor) -> Tensor:
    """``out[m, j] = table[idx[m, j]] · x[m]`` without materialising all (M, K, d) rows."""
    M, K = idx.shape
    out = torch.empty(M, K, dtype=x.dtype, device=x.device)
    block = max(1, _BLOCK_FLOATS // max(1, K * x.shape[1]))
    for start in range(0, M, block):
        stop = min(M, start + block)
        rows = table.index_select(0, idx[start:stop].reshape(-1))  # (B*K, d)
        rows = rows.view(stop - start, K, -1)
        out[start:stop] = torch.bmm(rows, x[start:stop].unsqueeze(-1)).squeeze(-1)
    return out


class RowGroups:
    """The lookups ``idx`` (M, K) whose row id lies in [lo, hi), grouped by row.


    Attributes:
        rows: (R,) distinct row ids, ascending. None if no lookup falls in the range.
        positions: flat positions into idx, sorted by row.
        offsets: (R,) start of each row's positions.
    """

    def __init__(self, idx: Tensor, lo: int = 0, hi: int | None = None):
        flat = idx.reshape(-1)
        self.k = idx.shape[1]
        pos = None
        if lo > 0 or hi is not None:  # hi=None: no upper bound
            keep = flat >= lo if hi is None else (flat >= lo) & (flat < hi)
            pos = keep.nonzero().squeeze(1)
            flat = flat[pos]
        self.rows = None
        if flat.numel() == 0:
            return
        sorted_ids, order = torch.sort(flat, stable=True)
        self.rows, counts = torch.unique_consecutive(sorted_ids, return_counts=True)
        self.positions = order if pos is None else pos[order]
        self.offsets = torch.cumsum(counts, 0) - counts

    def sums(self, coeff: Tensor, vecs: Tensor) -> Tensor:
        """(R, d): for each row r, Σ coeff[i, j] · vecs[i] over the lookups idx[i, j] = r."""
        return F.embedding_bag(
            self.positions // self.k,
            vecs,
            self.offsets,
            mode="sum",
            per_sample_weights=coeff.reshape(-1)[self.positions],
        )

    def dense(self, values: Tensor, lo: int, size: int) -> Tensor:
        """Scatter per-row values (R, d) into a dense (size, d) tensor at rows - lo."""
        out = values.new_zeros(size, values.shape[1])
        return out.index_copy_(0, self.rows - lo, values)

    def sparse(self, values: Tensor, lo: int, size: int) -> Tensor:
        """The same as a coalesced sparse COO tensor."""
        return torch.sparse_coo_tensor(
            (self.rows - lo).unsqueeze(0),
            values,
            (size, values.shape[1]),
            is_coalesced=True,
            check_invariants=False,
        )

"""PEER with its expert tables sharded over the ranks of a process group.

At a million experts the u and v tables and their optimizer moments dominate a PEER
layer's memory (He 2024 trains 1024² experts). ``ShardedPEER`` keeps on each of W ranks
only the expert rows r = rank (mod W) (``row_exchange``), so a rank holds about 1/W of
the expert bytes and, with a per-rank optimizer, 1/W of their moments. The query network
and the sub-keys stay replicated, so the product-key search stays local and exact; only
the rows a batch retrieved travel:

    forward:  ids = unique(top-k ids of this rank's tokens)      (U,)
              rows u[ids], v[ids] fetched from their owners       (U, d) each
              y = expert_mix(x, positions of idx in ids, ...)    the unsharded computation
    backward: the rows' gradients return to their owners, which sum them (rows asked by
              several ranks) into row-sparse (or dense) gradients of their shard.

An owner's shard gradient thus holds the sum over every rank's tokens, as the unsharded
layer's does over the global batch; the replicated parameters' gradients are summed by
the caller (data parallelism) as usual. Every rank must run each forward and backward of
the layer together (the exchanges are collectives), as data-parallel training does.
"""

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .expert_mix import expert_mix
from .peer import PEER
from .row_exchange import Route, fetch, route, rows_held, send_back


def sharded_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """name -> parameter for the parameters of ``model`` that hold only this rank's rows
    (every stage of every ``ShardedPEER`` table): data parallelism must not sum their
    gradients over the ranks, and each rank checkpoints its own."""
    out = {}
    for prefix, module in model.named_modules():
        if isinstance(module, ShardedPEER):
            for table in module.TABLES:
                for s, param in enumerate(getattr(module, table)):
                    out[f"{prefix}.{table}.{s}".lstrip(".")] = param
    return out


def whole_sizes(model: nn.Module) -> dict[int, int]:
    """id(parameter) -> its element count over all ranks, for the sharded parameters of
    ``model`` (a stage's rows times the width), so a sharded run reports the parameters of
    the whole model."""
    out = {}
    for module in model.modules():
        if isinstance(module, ShardedPEER):
            bounds = module._row_bounds()
            for table in module.TABLES:
                for s, param in enumerate(getattr(module, table)):
                    out[id(param)] = (bounds[s + 1] - bounds[s]) * module.dim
    return out


class _FetchRows(torch.autograd.Function):
    """(down, up shards) -> (U, d) rows of each for the ids of ``path``; the backward sends
    the rows' gradients to their owners."""

    @staticmethod
    def forward(ctx, down, up, path: Route, spans, hit, sparse_grad, *chunks):
        ctx.path, ctx.spans, ctx.hit, ctx.sparse_grad = path, spans, hit, sparse_grad
        rows_down, rows_up = fetch([down, up], path)
        return rows_down, rows_up

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_down, grad_up):
        d = grad_down.shape[1]
        got = send_back(torch.cat([grad_down, grad_up], dim=1), ctx.path)  # (R, 2d)
        served = ctx.path.served
        n = len(ctx.spans)
        grads = [None] * (2 * n)
        for c, (lo, hi) in enumerate(ctx.spans):
            # A chunk no rank retrieved from gets no gradient at all, as in the unsharded
            # layer (an optimizer step then skips it); one retrieved from elsewhere gets an
            # empty one, so every rank's optimizer counts the same steps for it.
            if not ctx.hit[c]:
                continue
            mine = ((served >= lo) & (served < hi)).nonzero().squeeze(1)
            rows, values = served[mine] - lo, got[mine]
            for g, part in ((c, values[:, :d]), (n + c, values[:, d:])):
                if not ctx.needs_input_grad[6 + g]:
                    continue
                if ctx.sparse_grad:
                    grads[g] = torch.sparse_coo_tensor(
                        rows.unsqueeze(0), part, (hi - lo, d), check_invariants=False
                    ).coalesce()  # rows asked by several ranks are summed
                else:
                    grads[g] = part.new_zeros(hi - lo, d).index_add_(0, rows, part)
        return (None, None, None, None, None, None, *grads)


class ShardedPEER(PEER):
    """``PEER`` whose expert tables hold only this rank's rows (module docstring).

    Args:
        dim, **peer_options: as ``PEER``. Built with the same random state on every rank,
            rank r's shard equals rows r, r + W, ... of the unsharded layer built with that
            state (``fill_gaussian_rows``), and growth keeps that true.
        group: the process group the experts are sharded over (default: the world).

    The router mass (``router_mass``, which ranks the experts ``grow(init="upcycle")``
    copies) counts this rank's tokens only: data-parallel training sums it over the ranks
    before growth (``lifelong.parallel.DataParallelPlugin``), as it does for ``PEER``.

    Attributes:
        exchanged_bytes: bytes this rank has sent to other ranks for expert rows (ids,
            rows, and gradients) since it was built; the benchmarks read it.
    """

    def __init__(self, dim: int, *, group: dist.ProcessGroup | None = None, **peer_options):
        if not dist.is_initialized():
            raise RuntimeError(
                "ShardedPEER needs torch.distributed: call torch.distributed.init_process_group "
                "first (torchrun does), or use PEER in a single process"
            )
        self.group = group
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        self.exchanged_bytes = 0
        super().__init__(dim, **peer_options)

    # ---------------------------------------------------------------- rows of this rank
    def _owned_rows(self, first: int) -> tuple[int, int]:
        return (self.rank - first) % self.world, self.world

    def _rows_of(self, table: Tensor, ids: Tensor) -> Tensor:
        return fetch([table], route(ids, self.group))[0]

    def _table_std(self, table: Tensor) -> float:
        # torch.std (Bessel-corrected) of the whole table, from every shard's moments.
        t = table.double()
        moments = torch.stack([t.new_tensor(t.numel()), t.sum(), t.square().sum()])
        dist.all_reduce(moments, group=self.group)
        count, total, squares = moments.tolist()
        return ((squares - total * total / count) / (count - 1)) ** 0.5

    def held_rows(self, rows: int | None = None) -> int:
        """Rows of each expert table this rank holds (of the first ``rows``; default all)."""
        rows = self.num_experts if rows is None else rows
        return rows_held(rows, rank=self.rank, world=self.world)

    # --------------------------------------------------------------------------- forward
    def _mix(self, x: Tensor, idx: Tensor, gates: Tensor) -> Tensor:
        """(M, d) tokens, (M, h*k) global expert ids and router weights -> (M, d)."""
        ids, where = torch.unique(idx, return_inverse=True)  # (U,), (M, h*k) positions
        path = route(ids, self.group)
        down, up = self._tables()
        down_chunks, up_chunks = self._chunks(self.down), self._chunks(self.up)
        bounds = self._row_bounds()
        held = [self.held_rows(b) for b in bounds]
        live = [
            c
            for c, (dc, uc) in enumerate(zip(down_chunks, up_chunks, strict=True))
            if dc.requires_grad or uc.requires_grad
        ]
        hit = self._retrieved_anywhere(ids, [(bounds[c], bounds[c + 1]) for c in live])
        rows_down, rows_up = _FetchRows.apply(
            down,
            up,
            path,
            tuple((held[c], held[c + 1]) for c in live),
            hit,
            self.sparse_grad,
            *[down_chunks[c] for c in live],
            *[up_chunks[c] for c in live],
        )
        ids_bytes, row_bytes = path.remote_bytes(2 * self.dim * down.element_size())
        self.exchanged_bytes += ids_bytes + row_bytes
        if rows_down.requires_grad:  # the gradients go back the same way
            self.exchanged_bytes += (sum(path.asked) - path.asked[self.rank]) * (
                2 * self.dim * down.element_size()
            )
        return expert_mix(
            x,
            where.view_as(idx),
            gates,
            down=rows_down,
            up=rows_up,
            down_chunks=[rows_down],
            up_chunks=[rows_up],
            spans=[(0, ids.shape[0])],
            activation=self._activation,
            sparse_grad=False,  # (U, d): only the retrieved rows
        )

    def _retrieved_anywhere(self, ids: Tensor, spans: list[tuple[int, int]]) -> tuple[bool, ...]:
        """For each trainable stage's global id span, whether any rank retrieved from it
        (one small all-reduce, only when a backward will follow)."""
        if not spans or not torch.is_grad_enabled():
            return ()
        flags = torch.stack([((ids >= lo) & (ids < hi)).any() for lo, hi in spans]).int()
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.group)
        return tuple(bool(f) for f in flags)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, world={self.world}"

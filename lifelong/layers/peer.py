"""PEER: Parameter Efficient Expert Retrieval (He 2024, arXiv 2407.04153), with growth.

A PEER layer holds N = n² singleton experts ``e_i(x) = σ(u_i·x)·v_i`` and n sub-keys on
each side of a product-key index. h query heads each retrieve the top-k experts by
``q_h(x)·k_i``; router weights are a softmax over each head's k scores (or a sigmoid), and
the heads are summed:  ``f(x) = Σ_h Σ_{i in topk_h} g_i(x)·e_i(x)``  (paper Eq. 1-3).

Growth (paper §1, lifelong learning): ``grow(m)`` appends m sub-keys to each side, which
adds ``2·n·m + m²`` experts with their own product keys, and freezes every sub-key and
expert that already existed. Each growth opens a *stage*; stage s owns the sub-key prefix
``[0, n_s)`` on each side and, in shell order (see ``product_keys``), the expert ids
``[0, n_s²)``. Retrieval restricted to stage s searches that prefix square only.

Storage. Each stage's experts are separate Parameters (so old stages can be frozen with
``requires_grad=False`` and hold no optimizer state), yet retrieval must gather from all
of them in one ``index_select`` whose cost does not depend on the number of stages. So the
stage Parameters are views into one contiguous table per projection (``_down``/``_up``).
Anything that breaks the aliasing (``deepcopy``, ``load_state_dict(assign=True)``,
``torch.func.functional_call``) is detected on the next forward and the table is rebuilt
from the Parameters, which are always the source of truth.
"""

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..checks import non_negative_number, one_of, positive_int
from .activations import get_activation
from .expert_mix import expert_mix
from .product_keys import id_to_pair, product_key_topk
from .staged import StagedLayer
from .upcycle import growth_usage, upcycle_sources

SCORE_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "softmax": lambda s: torch.softmax(s, dim=-1),
    "sigmoid": torch.sigmoid,
}
EXPERT_INITS = ("random", "upcycle")
# Rows per normal_ call when a stage's experts are drawn (fill_gaussian_rows).
_DRAW_ROWS = 1 << 16


def cat_frozen_runs(chunks: list[Tensor]) -> Tensor:
    """``torch.cat(chunks)`` whose autograd node sees each run of consecutive chunks that
    need no gradient (frozen stages) as one input, joined without autograd first. The
    backward of a cat slices a gradient for every input, so one input per frozen stage
    would add a cost per stage to every training step."""
    parts, frozen = [], []
    for chunk in chunks:
        if chunk.requires_grad:
            if frozen:
                parts.append(torch.cat(frozen) if len(frozen) > 1 else frozen[0])
                frozen = []
            parts.append(chunk)
        else:
            frozen.append(chunk)
    if frozen:
        parts.append(torch.cat(frozen) if len(frozen) > 1 else frozen[0])
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def fill_gaussian_rows(
    out: Tensor, count: int, std: float, *, keep: tuple[int, int] = (0, 1)
) -> Tensor:
    """Fill ``out`` with rows ``start::step`` (``keep``) of a (count, dim) N(0, std²) draw
    made in blocks of ``_DRAW_ROWS`` rows. Every rank of a sharded layer makes the same draw
    and keeps its own rows, so its shard equals those rows of the unsharded layer's table
    while it never holds more than one block of the rest; the unsharded layer draws
    straight into its table."""
    start, step = keep
    assert out.shape[0] == len(range(start, count, step)), (out.shape, count, keep)
    if out.is_meta:  # sizing a model before building it (experiment.memory): no values
        return out
    done = 0
    for lo in range(0, count, _DRAW_ROWS):
        rows = min(_DRAW_ROWS, count - lo)
        if step == 1:
            out[done : done + rows].normal_(0.0, std)
            done += rows
            continue
        block = out.new_empty(rows, out.shape[1]).normal_(0.0, std)
        mine = block[(start - lo) % step :: step]
        out[done : done + mine.shape[0]] = mine
        done += mine.shape[0]
    return out


def sub_keys_for(num_experts: int) -> int:
    """√num_experts, or a ValueError naming the nearest valid expert counts."""
    positive_int("num_experts", num_experts)
    n = math.isqrt(num_experts)
    if n * n != num_experts:
        raise ValueError(
            f"num_experts={num_experts} is not a perfect square; product keys need "
            f"num_experts = n² (n sub-keys per side): use {n * n} or {(n + 1) ** 2}"
        )
    return n


def check_product_keys(*, num_experts: int, topk: int) -> int:
    """√num_experts, after checking that product keys of that size can retrieve topk
    experts: each side's sub-key search returns topk of its n sub-keys, so topk <= n."""
    n = sub_keys_for(num_experts)
    positive_int("topk", topk)
    if topk > n:
        raise ValueError(
            f"topk={topk} exceeds the {n} sub-keys per side of num_experts={num_experts}; "
            f"choose 1 <= topk <= {n} or num_experts >= {topk * topk}"
        )
    return n


def query_network(dim: int, *, heads: int, key_dim: int, batchnorm: bool) -> nn.Sequential:
    """(M, dim) -> (M, heads*key_dim). The query BatchNorm raises expert usage (He 2024,
    Table 2); it makes the Linear's bias redundant, so the bias goes with it."""
    layers = [nn.Linear(dim, heads * key_dim, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(heads * key_dim))
    return nn.Sequential(*layers)


def peer_active_params(
    dim: int,
    *,
    heads: int,
    topk: int,
    key_dim: int,
    query_batchnorm: bool,
    sub_keys: int,
    tables: int = 2,
) -> int:
    """Parameters one token uses in a product-key layer with ``sub_keys`` per side: the
    query network (a Linear with a bias unless BatchNorm follows, whose affine pair then
    counts), every sub-key (all are scored) and heads·topk retrieved rows of ``tables``
    tables of dim weights (PEER: u_i and v_i; PKM: the value)."""
    width = heads * key_dim
    query = dim * width + (2 * width if query_batchnorm else width)
    return query + 2 * sub_keys * (key_dim // 2) + heads * topk * tables * dim


class PEER(StagedLayer):
    """A PEER layer that maps (..., dim) to (..., dim) and can grow new experts.

    Args:
        dim: model width d; experts are u_i, v_i in R^d.
        num_experts: initial expert count N, a perfect square n².
        heads: query heads h sharing one expert pool and one key set.
        topk: experts k retrieved per head (1 <= k <= n).
        key_dim: query/product-key width (even; each sub-key has key_dim/2). Default: dim.
        activation: expert non-linearity σ, "gelu" or "relu".
        score: router function over each head's k scores, "softmax" or "sigmoid".
        query_batchnorm: BatchNorm on the query output (on in the paper; raises usage).
        sparse_grad: False (default): dense gradients that any ``torch.optim`` optimizer
            accepts, at a cost proportional to N per step. True: the expert tables get
            row-sparse gradients touching only the retrieved rows, so a step costs the
            same at any N; train them with ``lifelong.optim.LazyAdamW`` (``lifelong run``
            does: ``model.peer.sparse_grad``).
    """

    TABLES = ("down", "up")  # per-expert weight tables: u_i (down) and v_i (up)
    ROUTING = ("query",)  # shared by every stage; GrowingExperts freezes it after stage 0

    def __init__(
        self,
        dim: int,
        *,
        num_experts: int,
        heads: int = 8,
        topk: int = 16,
        key_dim: int | None = None,
        activation: str = "gelu",
        score: str = "softmax",
        query_batchnorm: bool = True,
        sparse_grad: bool = False,
    ):
        super().__init__(dim)
        self.heads = positive_int("heads", heads)
        self.topk = positive_int("topk", topk)
        self.key_dim = positive_int("key_dim", dim if key_dim is None else key_dim)
        if self.key_dim % 2:
            raise ValueError(
                f"key_dim={self.key_dim} must be even: it splits into two sub-key halves "
                f"of key_dim/2 (e.g. key_dim={self.key_dim + 1})"
            )
        n = check_product_keys(num_experts=num_experts, topk=topk)
        self._activation = get_activation(activation)  # σ with its backward
        self.activation = activation
        self.score = one_of("score", score, SCORE_FUNCTIONS)
        self.query_batchnorm = bool(query_batchnorm)
        self.sparse_grad = bool(sparse_grad)

        self.query = query_network(
            dim, heads=self.heads, key_dim=self.key_dim, batchnorm=self.query_batchnorm
        )
        self.sub_keys1 = nn.ParameterList()  # stage s: (m_s, key_dim/2)
        self.sub_keys2 = nn.ParameterList()
        # Expert tables (u_i and v_i): stage s holds rows [n_{s-1}², n_s²), views into
        # the contiguous `_<name>` table.
        for name in self.TABLES:
            setattr(self, name, nn.ParameterList())
            setattr(self, f"_{name}", torch.empty(0, dim))
        self._add_stage(n, init="random", source_mass=None, noise=0.0)

    # ----------------------------------------------------------------------------- sizes
    def _side(self, stage: int) -> int:
        """Sub-keys per side after ``stage``: stage s has n_s² experts."""
        return math.isqrt(self._bounds[stage])

    @property
    def stage_sub_keys(self) -> list[int]:
        """Sub-keys per side that exist at each stage: [n_0, n_1, ...]."""
        return [math.isqrt(b) for b in self._bounds]

    @property
    def num_sub_keys(self) -> int:
        return self._side(-1)

    def active_params_per_token(self) -> int:
        return peer_active_params(
            self.dim,
            heads=self.heads,
            topk=self.topk,
            key_dim=self.key_dim,
            query_batchnorm=self.query_batchnorm,
            sub_keys=self.num_sub_keys,
            tables=len(self.TABLES),
        )

    # ----------------------------------------------------------------------------- growth
    @torch.no_grad()
    def grow(
        self, size: int, *, init: str = "random", usage: Tensor | None = None, noise: float = 0.01
    ) -> int:
        """Append ``size`` sub-keys per side and the experts they create.

        Every existing sub-key and expert is frozen (``requires_grad=False``, gradient
        cleared), so no optimizer touches it again, weight decay included. The query
        network stays trainable until ``freeze_routing()``.

        Args:
            size: m >= 1 sub-keys per side; adds 2·n·m + m² experts.
            init: "random" (the paper's initialisation) or "upcycle": copy the most-used
                existing experts (by ``usage``), plus Gaussian noise of ``noise`` times the
                table's standard deviation (sparse upcycling, Komatsuzaki et al. 2022).
            usage: (num_experts,) usage mass used to rank experts for upcycling; defaults to
                the router mass this layer accumulated over its training forwards.
            noise: >= 0, for "upcycle".

        Returns:
            The new stage index.
        """
        m = positive_int("size", size)
        one_of("init", init, EXPERT_INITS)
        noise = non_negative_number("noise", noise)
        usage = growth_usage(usage, router_mass=self.router_mass)
        self._freeze_stages()
        self._add_stage(m, init=init, source_mass=usage, noise=noise)
        return self.num_stages - 1

    def _add_stage(self, m: int, *, init: str, source_mass: Tensor | None, noise: float):
        ref = self.query[0].weight
        device, dtype = ref.device, ref.dtype
        old_n = self.num_sub_keys if self.num_stages else 0
        new_n = old_n + m
        old_rows, new_rows = old_n * old_n, new_n * new_n
        half = self.key_dim // 2

        # Sub-keys: uniform(±1/√(key_dim/2)) as in the PKM code of Lample et al.
        bound = half**-0.5
        for plist in (self.sub_keys1, self.sub_keys2):
            plist.append(
                nn.Parameter(
                    torch.empty(m, half, device=device, dtype=dtype).uniform_(-bound, bound)
                )
            )

        # Expert tables: reallocate once, keep old rows, point old Parameters at the new table.
        fresh = new_rows - old_rows
        start, step = self._owned_rows(old_rows)
        for plist_name in self.TABLES:
            name, plist = f"_{plist_name}", getattr(self, plist_name)
            old = getattr(self, name)  # (rows held, d): all of them, or a shard's
            held = len(range(start, fresh, step))
            table = torch.empty(old.shape[0] + held, self.dim, device=device, dtype=dtype)
            table[: old.shape[0]] = old
            new = table[old.shape[0] :]
            if init == "upcycle" and old_rows:
                src = upcycle_sources(source_mass, fresh, device=device)[start::step]
                fill_gaussian_rows(new, fresh, noise * self._table_std(old), keep=(start, step))
                new += self._rows_of(old, src)  # a noisy copy of the most-used experts
            else:
                # Values N(0, d^-1/2) as in PKM; the same scale for u keeps u·x at unit variance.
                fill_gaussian_rows(new, fresh, self.dim**-0.5, keep=(start, step))
            setattr(self, name, table)
            plist.append(nn.Parameter(new))
            self._repoint(plist, table)
        self._open_stage(fresh)

    # Where a table's rows live. This layer holds every row; ``ShardedPEER`` holds the rows
    # r = rank (mod world) and overrides these three.
    def _owned_rows(self, first: int) -> tuple[int, int]:
        """(start, step): of the rows ``first + j`` a growth adds, this layer holds j =
        start, start + step, ..."""
        return 0, 1

    def _rows_of(self, table: Tensor, ids: Tensor) -> Tensor:
        """(len(ids), d): the rows ``ids`` (global expert ids) of ``table``."""
        return table.index_select(0, ids)

    def _table_std(self, table: Tensor) -> float:
        """The standard deviation of every weight of ``table`` (upcycling's noise scale)."""
        return float(table.std())

    def _row_bounds(self) -> tuple[int, ...]:
        return (0, *self._bounds)

    @staticmethod
    def _chunks(plist: nn.ParameterList) -> list[Tensor]:
        """The stage tensors of ``plist`` in order. ``ParameterList`` iteration goes through
        ``__getitem__`` (~5 µs per element), a per-stage cost on every forward; its
        ``_parameters`` dict holds the same entries, also while ``functional_call`` swaps
        plain tensors in."""
        return list(plist._parameters.values())

    @staticmethod
    def _repoint(plist: nn.ParameterList, table: Tensor):
        start = 0
        for param in plist:
            stop = start + param.shape[0]
            param.data = table[start:stop]
            start = stop

    def _tables(self) -> tuple[Tensor, ...]:
        """The contiguous (N, dim) tables in ``TABLES`` order, rebuilt if a Parameter no
        longer aliases them."""
        out = []
        for plist_name in self.TABLES:
            name, plist = f"_{plist_name}", getattr(self, plist_name)
            table, chunks = getattr(self, name), self._chunks(plist)
            if not self._aliased(chunks, table):
                if all(isinstance(p, nn.Parameter) for p in chunks):
                    setattr(self, name, None)  # free the stale table before copying
                    table = torch.cat([p.detach() for p in chunks])
                    setattr(self, name, table)
                    self._repoint(plist, table)
                else:  # functional_call with plain tensors: a table for this call only
                    table = torch.cat([p.detach() for p in chunks])
            out.append(table)
        return tuple(out)

    @staticmethod
    def _aliased(chunks, table: Tensor) -> bool:
        """Whether ``chunks`` (tensors or a ParameterList) are consecutive row blocks of
        ``table``. This runs on every forward, once per stage, so each chunk is checked by
        the address of its first element and its layout only (no storage objects)."""
        chunks = list(chunks)
        if table.shape[0] != sum(p.shape[0] for p in chunks) or not table.is_contiguous():
            return False
        ptr, row_bytes = table.data_ptr(), table.stride(0) * table.element_size()
        for p in chunks:
            if p.data_ptr() != ptr or p.dtype != table.dtype or not p.is_contiguous():
                return False
            ptr += p.shape[0] * row_bytes
        return True

    def _apply(self, fn, recurse=True):
        # .to()/.cuda()/.half() convert each Parameter separately; re-join them at once.
        super()._apply(fn, recurse)
        self._tables()
        return self

    # ---------------------------------------------------------------------------- retrieval
    def queries(self, x: Tensor) -> Tensor:
        """(..., dim) -> (..., heads, key_dim): the output of ``self.query``."""
        lead = self._check_input(x)
        q = self.query(x.reshape(-1, self.dim))  # (M, h*dk)
        return q.view(*lead, self.heads, self.key_dim)

    def expert_keys(self, stage: int | None = None) -> Tensor:
        """(experts at stage, key_dim); row i is the product key of global expert i."""
        s = self.num_stages - 1 if stage is None else self.check_stage(stage)
        keys1, keys2 = self._sub_keys(s)
        n = self._side(s)
        i1, i2 = id_to_pair(torch.arange(n * n, device=keys1.device))
        return torch.cat([keys1[i1], keys2[i2]], dim=1)

    def retrieve(self, x: Tensor, stage: int | Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Top-k product-key scores ``q·k_i`` and global expert ids, each (..., heads, topk)."""
        lead = self._check_input(x)
        scores, idx = self._retrieve(x.reshape(-1, self.dim), self.stage_rows(stage, lead))
        shape = (*lead, self.heads, self.topk)
        return scores.view(shape), idx.view(shape)

    def _sub_keys(self, stage: int) -> tuple[Tensor, Tensor]:
        """Both sub-key sets of the stages 0..stage."""
        keys1 = cat_frozen_runs(self._chunks(self.sub_keys1)[: stage + 1])
        keys2 = cat_frozen_runs(self._chunks(self.sub_keys2)[: stage + 1])
        return keys1, keys2

    def _retrieve(self, x: Tensor, stage) -> tuple[Tensor, Tensor]:
        """(M, dim) -> scores, ids each (M, heads, topk)."""
        M = x.shape[0]
        limit = None
        if stage is None:
            newest = self.num_stages - 1
        elif isinstance(stage, int):
            # Score against exactly the stage's sub-keys: the same GEMM shapes as when the
            # stage was trained, so its outputs stay bit-identical after later growth.
            newest = stage
        else:
            newest = int(stage.max())
            sides = torch.tensor(self.stage_sub_keys, device=x.device)
            limit = sides[stage].repeat_interleave(self.heads)
        keys1, keys2 = self._sub_keys(newest)
        q = self.query(x).view(M * self.heads, self.key_dim)  # (M*h, dk)
        scores, idx = product_key_topk(q, keys1, keys2, self.topk, limit)  # (M*h, k)
        return scores.view(M, self.heads, self.topk), idx.view(M, self.heads, self.topk)

    # ------------------------------------------------------------------------------ forward
    def forward(self, x: Tensor, stage: int | Tensor | None = None) -> Tensor:
        """(..., dim) -> (..., dim). ``stage`` restricts retrieval: None (all experts), an
        int, or an integer tensor of per-sample stages over the leading dims of x."""
        lead = self._check_input(x)
        flat = x.reshape(-1, self.dim)  # (M, d)
        scores, idx = self._retrieve(flat, self.stage_rows(stage, lead))  # (M, h, k)
        gates = SCORE_FUNCTIONS[self.score](scores)  # (M, h, k)
        idx, gates = idx.flatten(1), gates.flatten(1)  # heads summed: one bag of h*k experts
        self._route(idx, gates)
        return self._mix(flat, idx, gates).view(*lead, self.dim)

    def _mix(self, x: Tensor, idx: Tensor, gates: Tensor) -> Tensor:
        """(M, d) tokens, (M, h*k) expert ids and router weights -> (M, d)."""
        down, up = self._tables()
        down_chunks, up_chunks = self._chunks(self.down), self._chunks(self.up)
        bounds = self._row_bounds()
        # Only stages that can receive a gradient enter the autograd node (the tables carry
        # the values): each input costs a little on every forward and backward, and the
        # frozen stages would make that cost grow with the number of stages.
        live = [
            c
            for c, (d, u) in enumerate(zip(down_chunks, up_chunks, strict=True))
            if d.requires_grad or u.requires_grad
        ]
        return expert_mix(
            x,
            idx,
            gates,
            down=down,
            up=up,
            down_chunks=[down_chunks[c] for c in live],
            up_chunks=[up_chunks[c] for c in live],
            spans=[(bounds[c], bounds[c + 1]) for c in live],
            activation=self._activation,
            sparse_grad=self.sparse_grad,
        )

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_experts={self.num_experts}, heads={self.heads}, "
            f"topk={self.topk}, key_dim={self.key_dim}, stages={self.stage_sub_keys}, "
            f"activation={self.activation}, score={self.score}, sparse_grad={self.sparse_grad}"
        )

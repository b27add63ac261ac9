"""What the classic MoE layers share: staged FFN experts and router rows, growth, stage
restriction, routing hooks and the grouped expert computation.

A layer holds N experts ``e_i(x) = W2_i σ(W1_i x)`` (no biases, the layout of
``DenseFFN``) and a linear router with one row r_i per expert; the router scores are
``softmax(x·r_i)`` over the experts (docs/design.md §3). Subclasses decide which (token, expert)
pairs run and with which combine weight (``_dispatch``); this module runs them.

Growth (as PEER's, docs/design.md §2): ``grow(m)`` appends m experts *and* m
router rows as a new stage and freezes every existing expert and router row. Each stage's
weights are separate Parameters (``w1``, ``w2``, ``router`` are ParameterLists of stage
chunks), so frozen stages hold no gradient and no optimizer state. The router weight is
the concatenation of its chunks (N x dim, small); the experts are read from their chunk.

Stage restriction: ``stage=s`` scores only the router rows that existed at stage s (the
same GEMM shapes as when s was trained, so its outputs stay bit-identical after later
growth); a per-sample stage tensor scores the rows of the newest stage in the batch and
masks, per row, the logits of experts its stage did not have to -inf before any softmax
or top-k.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import non_negative_number, one_of, positive_int
from .activations import get_activation
from .staged import StagedLayer
from .upcycle import growth_usage, noisy_copy, upcycle_sources

EXPERT_INITS = ("random", "upcycle", "dense")
ROUTER_STD = 0.02  # router init N(0, 0.02), as in sparse upcycling (Komatsuzaki et al. 2022)


def capacity(factor: float, tokens: int, experts: int) -> int:
    """Slots per expert ``C = round(factor · T / N)`` (rounded half up), clipped to
    [1, T]: at least one slot, and more than T could never be filled."""
    return min(tokens, max(1, math.floor(factor * tokens / experts + 0.5)))


def moe_hidden_for(active: int, *, dim: int, num_experts: int, experts_per_token: float) -> int:
    """Expert width giving an MoE with ``num_experts`` router rows ``active`` parameters per
    token: the router (dim per expert) plus experts_per_token experts of 2·dim·hidden."""
    per_token = active - dim * num_experts
    return max(1, round(per_token / (experts_per_token * 2 * dim)))


class StagedMoE(StagedLayer):
    """Base of the MoE layers: (..., dim) -> (..., dim) through N growing FFN experts.

    Subclasses set ``routing`` (a name) and implement ``_dispatch(logits)``, which maps the
    (M, n) router logits (-inf where a row may not use an expert) to the (M, K) expert ids
    (-1: no expert in that slot), their (M, K) combine weights and the auxiliary loss.
    """

    routing = ""

    def __init__(self, dim: int, *, num_experts: int, hidden: int, activation: str = "gelu"):
        super().__init__(dim)
        self.hidden = positive_int("hidden", hidden)
        positive_int("num_experts", num_experts)
        self._activation = get_activation(activation).forward
        self.activation = activation
        self.w1 = nn.ParameterList()  # stage s: (n_s, hidden, dim), nn.Linear layout
        self.w2 = nn.ParameterList()  # stage s: (n_s, dim, hidden)
        self.router = nn.ParameterList()  # stage s: (n_s, dim), one row per expert
        self.aux_loss: Tensor | None = None  # from the last forward
        self._add_stage(num_experts, init="random", usage=None, noise=0.0, source=None)

    @classmethod
    def from_dense(cls, dense: nn.Module, *, num_experts: int, **kwargs) -> "StagedMoE":
        """Sparse upcycling (Komatsuzaki et al. 2022): every initial expert a copy of the
        dense FFN ``dense`` (a ``DenseFFN``: bias-free ``fc1``, ``fc2``), router N(0, 0.02).
        ``kwargs`` are the constructor's other arguments."""
        hidden, dim = _dense_weights(dense)[0].shape
        layer = cls(dim, num_experts=num_experts, hidden=hidden, **kwargs)
        with torch.no_grad():
            w1, w2 = _dense_weights(dense, layer)
            layer.w1[0].copy_(w1.expand_as(layer.w1[0]))
            layer.w2[0].copy_(w2.expand_as(layer.w2[0]))
        return layer

    # ----------------------------------------------------------------------------- growth
    @torch.no_grad()
    def grow(
        self,
        size: int,
        *,
        init: str = "random",
        usage: Tensor | None = None,
        noise: float = 0.01,
        source: nn.Module | None = None,
    ) -> int:
        """Append ``size`` experts and router rows as a new stage; freeze the rest.

        Every existing expert and router row gets ``requires_grad=False`` and its gradient
        cleared, so no optimizer moves it again (weight decay and momentum included).

        Args:
            size: m >= 1 experts to add.
            init: "random" (nn.Linear's init), "upcycle" (copies of the most-used existing
                experts, ranked by ``usage``, plus Gaussian noise of ``noise`` times the std
                of the existing weights) or "dense" (exact copies of the dense FFN
                ``source``, sparse upcycling, Komatsuzaki et al. 2022). New router rows
                are always N(0, 0.02), as the upcycled router in that paper.
            usage: (num_experts,) mass ranking experts for "upcycle"; default the router
                mass accumulated over training forwards (``router_mass``).
            noise: >= 0, for "upcycle".
            source: the ``DenseFFN`` to copy, required by (and only for) init="dense".

        Returns:
            The new stage index.
        """
        m = positive_int("size", size)
        one_of("init", init, EXPERT_INITS)
        if (init == "dense") != (source is not None):
            raise ValueError(f"source is required by init='dense' and only by it (init={init!r})")
        noise = non_negative_number("noise", noise)
        usage = growth_usage(usage, router_mass=self.router_mass)
        if source is not None:
            _dense_weights(source, self)
        self._freeze_stages()
        self._add_stage(m, init=init, usage=usage, noise=noise, source=source)
        return self.num_stages - 1

    def _add_stage(self, m: int, *, init: str, usage, noise: float, source):
        ref = self.router[0] if len(self.router) else None
        kw = {"device": ref.device, "dtype": ref.dtype} if ref is not None else {}
        w1 = torch.empty(m, self.hidden, self.dim, **kw)  # (m, hidden, dim)
        w2 = torch.empty(m, self.dim, self.hidden, **kw)  # (m, dim, hidden)
        if init == "upcycle":
            src = upcycle_sources(usage, m, device=w1.device)  # (m,)
            for new, plist in ((w1, self.w1), (w2, self.w2)):
                new.copy_(noisy_copy(torch.cat(list(plist)), src, noise))  # from (N, ., .)
        elif init == "dense":
            d1, d2 = _dense_weights(source, self)
            w1.copy_(d1.expand_as(w1))
            w2.copy_(d2.expand_as(w2))
        else:  # nn.Linear's default: U(±1/√fan_in)
            w1.uniform_(-(self.dim**-0.5), self.dim**-0.5)
            w2.uniform_(-(self.hidden**-0.5), self.hidden**-0.5)
        self.w1.append(nn.Parameter(w1))
        self.w2.append(nn.Parameter(w2))
        self.router.append(nn.Parameter(torch.empty(m, self.dim, **kw).normal_(0.0, ROUTER_STD)))
        self._open_stage(m)

    # ---------------------------------------------------------------------------- forward
    def forward(self, x: Tensor, stage: int | Tensor | None = None) -> Tensor:
        """(..., dim) -> (..., dim). ``stage``: None (all experts), an int, or an integer
        tensor of per-sample stages over the leading dims of x. Keeps ``self.aux_loss``."""
        lead = self._check_input(x)
        flat = x.reshape(-1, self.dim)  # (M, d)
        logits = self._logits(flat, self.stage_rows(stage, lead))  # (M, n)
        idx, gates, self.aux_loss = self._dispatch(logits)  # (M, K) each
        assert idx.shape == gates.shape and idx.shape[0] == flat.shape[0]
        self._route(idx, gates)
        return self._mix(flat, idx, gates).view(*lead, self.dim)

    def _dispatch(self, logits: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """The routing rule, defined by each MoE (token choice, expert choice)."""
        raise NotImplementedError(f"{type(self).__name__} must define _dispatch()")

    def _logits(self, x: Tensor, stage) -> Tensor:
        """(M, d) -> (M, n) float32 router logits over the first n experts (those of the
        newest stage allowed), -inf where a row's stage did not have the expert yet."""
        newest = self.num_stages - 1 if stage is None else stage
        if isinstance(stage, Tensor):
            newest = int(stage.max())
        chunks = list(self.router[: newest + 1])
        weight = torch.cat(chunks) if len(chunks) > 1 else chunks[0]  # (n, d)
        logits = F.linear(x.float(), weight.float())  # float32 router (Switch: selective precision)
        if isinstance(stage, Tensor):
            bounds = torch.tensor(self._bounds, device=x.device)[stage.to(x.device)]  # (M,)
            later = torch.arange(weight.shape[0], device=x.device) >= bounds[:, None]  # (M, n)
            logits = logits.masked_fill(later, float("-inf"))
        return logits

    def _mix(self, x: Tensor, idx: Tensor, gates: Tensor) -> Tensor:
        """``y[m] = Σ_j gates[m, j] · e_{idx[m, j]}(x[m])`` over the slots with idx >= 0.

        Slots are sorted by expert (stable, so each expert sees its tokens in token order)
        and each expert runs once on its rows; a Python loop over experts, never tokens.
        (M, d), (M, K), (M, K) -> (M, d)."""
        M, K = idx.shape
        flat = idx.reshape(-1)
        slots = torch.nonzero(flat >= 0).squeeze(1)  # (A,)
        slots = slots[torch.argsort(flat[slots], stable=True)]  # grouped by expert
        counts = torch.bincount(flat[slots], minlength=self.num_experts).tolist()
        rows = x[torch.div(slots, K, rounding_mode="floor")]  # (A, d)
        act = self._activation
        outs, start = [], 0
        bounds = [0, *self._bounds]
        for c in range(self.num_stages):
            lo, hi = bounds[c], bounds[c + 1]
            if sum(counts[lo:hi]) == 0:
                continue  # no token reached this stage: it gets no gradient at all
            w1s, w2s = self.w1[c].unbind(0), self.w2[c].unbind(0)  # backward: one stack
            for e in range(lo, hi):
                if counts[e]:
                    part = rows[start : start + counts[e]]  # (n_e, d)
                    outs.append(F.linear(act(F.linear(part, w1s[e - lo])), w2s[e - lo]))
                    start += counts[e]
        out = torch.cat(outs) if outs else rows  # (A, d)
        per_slot = x.new_zeros(M * K, self.dim).index_copy(0, slots, out)  # (M*K, d)
        y = (per_slot.view(M, K, self.dim) * gates.to(x.dtype).unsqueeze(-1)).sum(1)
        assert y.shape == x.shape
        return y

    def __getstate__(self):
        # The last aux_loss is a non-leaf tensor with a graph: deepcopy (Avalanche's LwF
        # copies the model) and pickling would fail on it, and it belongs to one step.
        state = super().__getstate__()
        state["aux_loss"] = None
        return state

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, hidden={self.hidden}, num_experts={self.num_experts}, "
            f"stages={self.stage_bounds}, activation={self.activation}"
        )


def _dense_weights(dense: nn.Module, layer: StagedMoE | None = None) -> tuple[Tensor, Tensor]:
    """(hidden, dim) and (dim, hidden) weights of a bias-free dense FFN, checked against
    ``layer`` (and moved to its device and dtype) when given."""
    fc1, fc2 = getattr(dense, "fc1", None), getattr(dense, "fc2", None)
    if not isinstance(fc1, nn.Linear) or not isinstance(fc2, nn.Linear):
        raise ValueError("source must be a DenseFFN: Linear layers fc1 (dim->hidden), fc2")
    if fc1.bias is not None or fc2.bias is not None:
        raise ValueError("source must be bias-free: MoE experts have no biases")
    if getattr(dense, "num_stages", 1) > 1:  # its units beyond fc1/fc2 would be left out
        raise ValueError(
            f"source has grown to {dense.num_stages} stages; an expert copies one FFN of fixed "
            f"width: upcycle from a dense FFN that never grew"
        )
    w1, w2 = fc1.weight.detach(), fc2.weight.detach()
    if layer is None:
        return w1, w2
    if w1.shape != (layer.hidden, layer.dim) or w2.shape != (layer.dim, layer.hidden):
        raise ValueError(
            f"source has fc1 {tuple(w1.shape)}, fc2 {tuple(w2.shape)}; expected "
            f"({layer.hidden}, {layer.dim}) and ({layer.dim}, {layer.hidden})"
        )
    act = getattr(dense, "activation", None)  # DenseFFN: the activation's name
    if isinstance(act, str) and act != layer.activation:
        raise ValueError(f"source's activation differs from activation={layer.activation!r}")
    ref = layer.router[0]
    return w1.to(ref.device, ref.dtype), w2.to(ref.device, ref.dtype)

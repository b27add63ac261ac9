"""Dense FFNs ``W2 σ(W1 x)``: ``MLP``, the transformer's ordinary block FFN, and
``DenseFFN``, the dense baseline in the expert slot, with the expert layers' interface.

A hidden unit ``σ(w1_i·x)·w2_i`` (row i of W1, column i of W2) is PEER's singleton expert
``σ(u_i·x)·v_i`` retrieved by every token with gate 1. ``DenseFFN`` treats its units as
experts, so it grows, restricts and reports usage the way PEER and the MoEs do:

- Growth (docs/design.md §2, Net2Net-style width growth): ``grow(m)`` appends
  m units (m rows of W1, m columns of W2) as a new stage and freezes every existing unit
  with ``requires_grad=False``, as ``PEER.grow`` and ``StagedMoE.grow`` do; each stage is
  its own Parameters, so frozen units hold no gradient and no optimizer state. Stage 0 is
  ``fc1``/``fc2``, so a layer that never grows has the parameters (``fc1.weight``,
  ``fc2.weight``) and outputs of ``MLP``; stage s >= 1 is ``fc1_grown[s-1]`` and
  ``fc2_grown[s-1]``.
- Stage restriction (as PEER's task-aware retrieval, which searches the experts of
  stages <= s): ``stage=s`` uses the units of stages 0..s.
  The stages are summed chunk by chunk in stage order, the same operations as when stage
  s was the newest, so its outputs stay bit-identical after later growth.
- Usage (docs/design.md §4): the gate of unit i is its activation
  magnitude, ``g_i(x) = |σ(w1_i·x)|``: every unit is "retrieved", and ``z'_i = Σ_x g_i(x)``
  separates dead or rarely active units from busy ones (usage = the fraction of units
  active on some token). The routing hook reports it; ``router_mass`` accumulates it
  over training forwards and ranks units for upcycling.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import non_negative_number, one_of, positive_int
from .activations import get_activation
from .staged import StagedLayer
from .upcycle import growth_usage, noisy_copy, upcycle_sources

UNIT_INITS = ("random", "upcycle")


class MLP(nn.Module):
    """``W2 σ(W1 x)``: (..., dim) -> (..., dim), no biases. ``stage`` is accepted and
    ignored, so it plugs in wherever an expert layer does; it is not a growing layer (no
    growth, no routing hook), so usage metrics and growth leave it alone."""

    def __init__(self, dim: int, *, hidden: int, activation: str = "gelu"):
        super().__init__()
        self._activation = get_activation(activation).forward
        self.activation = activation
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor, stage=None) -> Tensor:
        return self.fc2(self._activation(self.fc1(x)))


def dense_hidden_for(active: int, *, dim: int) -> int:
    """Units giving a ``DenseFFN`` ``active`` parameters per token (2·dim per unit)."""
    return max(1, round(active / (2 * dim)))


class DenseFFN(StagedLayer):
    """The dense baseline, (..., dim) -> (..., dim), with growth, stage-restricted forward,
    routing hooks and usage. With ``hidden = heads·topk`` it has the active parameters per
    token of a PEER layer (2·dim per retrieved expert); growth adds 2·dim per unit.
    Until it grows, its parameters (``fc1.weight``, ``fc2.weight``) and outputs are those
    of ``MLP``.

    Args:
        dim: model width.
        hidden: units of stage 0 (fc1: dim -> hidden, fc2: hidden -> dim).
        activation: σ, "gelu" or "relu".
    """

    def __init__(self, dim: int, *, hidden: int, activation: str = "gelu"):
        super().__init__(dim)
        positive_int("hidden", hidden)
        self._activation = get_activation(activation).forward
        self.activation = activation
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)
        self.fc1_grown = nn.ParameterList()  # stage s >= 1 at [s-1]: (m_s, dim), rows of W1
        self.fc2_grown = nn.ParameterList()  # stage s >= 1 at [s-1]: (dim, m_s), cols of W2
        self._open_stage(hidden)

    def active_params_per_token(self) -> int:
        """Every unit of the newest stage, 2·dim weights each (a token of an older task
        uses fewer under task-aware routing; PEER's count ignores stages too)."""
        return 2 * self.dim * self.num_experts

    # ----------------------------------------------------------------------------- growth
    @torch.no_grad()
    def grow(
        self,
        size: int | None = None,
        *,
        init: str = "random",
        usage: Tensor | None = None,
        noise: float = 0.01,
    ) -> int:
        """Append ``size`` hidden units as a new stage and freeze every existing one
        (``requires_grad=False``, gradient cleared): no optimizer moves them again, weight
        decay and momentum included.

        Args:
            size: m >= 1 units to add; None adds as many as stage 0 has.
            init: "random" (the distribution of stage 0: nn.Linear's U(±1/√fan_in) at the
                initial width) or "upcycle": copies of the most-used existing units (by
                ``usage``, cycled when m exceeds the used ones), both their W1 row and W2
                column, plus Gaussian noise of ``noise`` times the std of the existing
                weights (as the MoE and PEER upcycling, Komatsuzaki et al. 2022). A copy
                adds to its original's output: it is not function-preserving, because the
                frozen original cannot be halved as in Net2Net.
            usage: (num_experts,) mass ranking units for "upcycle"; default the activation
                mass accumulated over training forwards (``router_mass``).
            noise: >= 0, for "upcycle".

        Returns:
            The new stage index.
        """
        m = self._bounds[0] if size is None else positive_int("size", size)
        one_of("init", init, UNIT_INITS)
        noise = non_negative_number("noise", noise)
        usage = growth_usage(usage, router_mass=self.router_mass, what="unit")
        ref = self.fc1.weight
        kw = {"device": ref.device, "dtype": ref.dtype}
        w1 = torch.empty(m, self.dim, **kw)  # (m, d)
        w2 = torch.empty(self.dim, m, **kw)  # (d, m)
        if init == "upcycle":
            src = upcycle_sources(usage, m, device=ref.device)  # (m,)
            old1 = torch.cat([self.fc1.weight, *self.fc1_grown])  # (H, d)
            old2 = torch.cat([self.fc2.weight, *self.fc2_grown], dim=1)  # (d, H)
            w1.copy_(noisy_copy(old1, src, noise))
            w2.copy_(noisy_copy(old2, src, noise, dim=1))
        else:
            w1.uniform_(-(self.dim**-0.5), self.dim**-0.5)
            w2.uniform_(-(self.fc2.in_features**-0.5), self.fc2.in_features**-0.5)
        self._freeze_stages()
        self.fc1_grown.append(nn.Parameter(w1))
        self.fc2_grown.append(nn.Parameter(w2))
        self._open_stage(m)
        return self.num_stages - 1

    # ---------------------------------------------------------------------------- forward
    def forward(self, x: Tensor, stage: int | Tensor | None = None) -> Tensor:
        """(..., dim) -> (..., dim). ``stage``: None (every unit), an int s (the units of
        stages 0..s), or an integer tensor of per-sample stages over the leading dims of x
        (each distinct stage runs on its own rows, as an int stage would)."""
        lead = self._check_input(x)
        rows = self.stage_rows(stage, lead)
        if not isinstance(rows, Tensor):
            y, hs = self._stage_forward(x, self.num_stages - 1 if rows is None else rows)
            if self._routing_hooks:
                h = torch.cat(hs, -1)
                h = h.reshape(-1, h.shape[-1])  # (M, H_s)
                self._report(torch.arange(h.shape[1], device=h.device).expand_as(h), h.abs())
            return y
        return self._mixed_forward(x.reshape(-1, self.dim), rows).view(*lead, self.dim)

    def _stage_forward(self, x: Tensor, stage: int) -> tuple[Tensor, list[Tensor]]:
        """(..., d) -> output (..., d) and, per stage 0..stage, the activations σ(W1_c x)
        (..., m_c) of its units. Stage 0 is the plain ``fc2(σ(fc1(x)))`` of ``MLP``."""
        h = self._activation(self.fc1(x))  # (..., H_0)
        y, hs = self.fc2(h), [h]
        for w1, w2 in zip(self.fc1_grown[:stage], self.fc2_grown[:stage], strict=True):
            h = self._activation(F.linear(x, w1))  # (..., m_c)
            y = y + F.linear(h, w2)  # in stage order: every older stage's sums unchanged
            hs.append(h)
        if self.training:
            with torch.no_grad():
                lo = 0
                for h in hs:
                    hi = lo + h.shape[-1]
                    self.router_mass[lo:hi] += h.reshape(-1, hi - lo).abs().sum(0).float()
                    lo = hi
        return y, hs

    def _mixed_forward(self, x: Tensor, rows: Tensor) -> Tensor:
        """(M, d) tokens, (M,) stages -> (M, d): one group of rows per distinct stage."""
        M, width = x.shape[0], self.stage_bounds[int(rows.max())]
        order = torch.argsort(rows.to(x.device), stable=True)  # (M,) grouped by stage
        stages, counts = torch.unique_consecutive(rows.to(x.device)[order], return_counts=True)
        outs, ids, gates, start = [], [], [], 0
        for s, n in zip(stages.tolist(), counts.tolist(), strict=True):
            y, hs = self._stage_forward(x[order[start : start + n]], s)  # (n, d)
            outs.append(y)
            if self._routing_hooks:  # units the stage lacks: id -1, gate 0
                h = torch.cat(hs, -1)  # (n, H_s)
                pad = width - h.shape[1]
                unit = torch.arange(h.shape[1], device=x.device).expand_as(h)
                ids.append(F.pad(unit, (0, pad), value=-1))
                gates.append(F.pad(h.detach().abs(), (0, pad)))
            start += n
        back = torch.empty_like(order)
        back[order] = torch.arange(M, device=x.device)  # sorted position of each token
        if self._routing_hooks:
            self._report(torch.cat(ids)[back], torch.cat(gates)[back])
        y = torch.cat(outs)[back]
        assert y.shape == x.shape
        return y

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, units={self.num_experts}, stages={self.stage_bounds}, "
            f"activation={self.activation}"
        )

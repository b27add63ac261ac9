"""What every growing layer shares: stages, stage-restricted routing, routing hooks, the
router mass, and the freezing that growth does (docs/design.md §2).

Experts are numbered so that every stage is an id prefix: stage s owns the ids
``[bounds[s-1], bounds[s])``, and "the experts of stages <= s" are the ids
``[0, bounds[s])``. A layer opens a stage with ``_open_stage(added)`` when it is built and
each time it grows, and reports each forward's routing with ``_route(idx, gates)``.
"""

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..checks import positive_int

RoutingHook = Callable[[nn.Module, Tensor, Tensor], None]


class StagedLayer(nn.Module):
    """Base of the growing layers, (..., dim) -> (..., dim); see ``GrowingLayer``.

    Subclasses implement ``forward(x, stage=None)``, ``grow(size, *, init)`` (which calls
    ``_freeze_stages()`` and then ``_open_stage``) and ``active_params_per_token()``.
    """

    # Sub-modules that route tokens to the experts of every stage (PEER's query network).
    # Growth leaves them trainable; ``freeze_routing`` freezes them.
    ROUTING: tuple[str, ...] = ()

    def __init__(self, dim: int):
        super().__init__()
        self.dim = positive_int("dim", dim)
        self._bounds: tuple[int, ...] = ()  # experts that exist after each stage
        self._routing_hooks: OrderedDict[int, RoutingHook] = OrderedDict()
        self._routing_frozen = False
        # z'_i = Σ_x g_i(x) over training tokens (docs/design.md §4): ranks experts for
        # upcycling; a buffer, so a resumed run upcycles the same experts.
        self.register_buffer("router_mass", torch.zeros(0))

    # ----------------------------------------------------------------------------- stages
    @property
    def num_stages(self) -> int:
        return len(self._bounds)

    @property
    def stage_bounds(self) -> list[int]:
        """Experts that exist after each stage, e.g. [4, 6, 9]."""
        return list(self._bounds)

    @property
    def num_experts(self) -> int:
        return self._bounds[-1]

    def _open_stage(self, added: int):
        """Record a new stage of ``added`` experts, with no router mass yet."""
        self._bounds = (*self._bounds, (self._bounds[-1] if self._bounds else 0) + added)
        mass = self.router_mass
        self.router_mass = torch.cat([mass, torch.zeros(added, device=mass.device)])

    def check_stage(self, stage) -> int:
        if isinstance(stage, bool) or not 0 <= stage < self.num_stages:
            raise ValueError(
                f"stage={stage} is out of range; this layer has stages 0..{self.num_stages - 1}"
            )
        return int(stage)

    def stage_rows(self, stage, lead: tuple[int, ...]) -> int | Tensor | None:
        """``stage`` normalised to None (every expert), an int, or an (M,) tensor of
        per-row stages for the M = prod(lead) rows of an input with leading dims ``lead``."""
        if stage is None:
            return None
        if not isinstance(stage, Tensor):
            return self.check_stage(stage)
        if stage.dtype == torch.bool or stage.is_floating_point() or stage.is_complex():
            raise ValueError(f"stage must be an integer tensor, got dtype {stage.dtype}")
        if tuple(stage.shape) != tuple(lead[: stage.dim()]):
            raise ValueError(
                f"stage has shape {tuple(stage.shape)}; it must match the leading dims of x "
                f"{tuple(lead)} (e.g. one stage per sample: shape {tuple(lead[:1])})"
            )
        lo, hi = (self.check_stage(int(v)) for v in torch.aminmax(stage))
        if lo == hi:
            return lo
        rows = stage.reshape(*stage.shape, *([1] * (len(lead) - stage.dim()))).expand(*lead)
        return rows.reshape(-1)

    def _check_input(self, x: Tensor) -> tuple[int, ...]:
        """The leading dims of x (..., dim)."""
        if x.dim() < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected (..., {self.dim})")
        return tuple(x.shape[:-1])

    # ---------------------------------------------------------------------------- freezing
    def _freeze_stages(self):
        """Growth: every existing parameter but the routing modules' stops training
        (``requires_grad=False``, gradient cleared), so no optimizer moves it again, weight
        decay and momentum included."""
        routing = {id(p) for name in self.ROUTING for p in getattr(self, name).parameters()}
        for param in self.parameters():
            if id(param) not in routing:
                param.requires_grad_(False)
                param.grad = None

    def freeze_routing(self):
        """Freeze the modules in ``ROUTING``, BatchNorm statistics included (they stay in
        eval mode from now on), so each stage's experts keep receiving the tokens they were
        trained on. A no-op for layers that route through per-stage parameters only."""
        for name in self.ROUTING:
            module = getattr(self, name)
            module.requires_grad_(False)
            for param in module.parameters():
                param.grad = None
            module.eval()
        self._routing_frozen = bool(self.ROUTING)

    def train(self, mode: bool = True):
        super().train(mode)
        if self._routing_frozen:
            for name in self.ROUTING:
                getattr(self, name).eval()
        return self

    def managed_parameters(self) -> list[nn.Parameter]:
        """The parameters growth owns: all of them. Old stages are frozen by ``grow`` and
        reached only through stage routing, so they are not "shared" parameters."""
        return list(self.parameters())

    # ----------------------------------------------------------------------------- routing
    def register_routing_hook(self, hook: RoutingHook) -> RemovableHandle:
        """Call ``hook(layer, idx, gates)`` after each forward's routing: (M, K) expert ids
        (-1: an empty slot, e.g. a token dropped over capacity) and their gates (0 there),
        detached. Metrics use it to accumulate usage. Returns a handle; ``remove()`` unhooks."""
        handle = RemovableHandle(self._routing_hooks)
        self._routing_hooks[handle.id] = hook
        return handle

    def _route(self, idx: Tensor, gates: Tensor):
        """idx, gates (M, K): add the gates to the router mass (training only) and call the
        routing hooks."""
        if self.training:
            self._add_mass(idx, gates)
        self._report(idx, gates)

    @torch.no_grad()
    def _add_mass(self, idx: Tensor, gates: Tensor):
        idx, gates = idx.reshape(-1), gates.reshape(-1)
        kept = idx >= 0
        self.router_mass.index_add_(0, idx[kept], gates[kept].to(self.router_mass.dtype))

    def _report(self, idx: Tensor, gates: Tensor):
        for hook in self._routing_hooks.values():
            hook(self, idx.detach(), gates.detach())

"""The contract every growing layer keeps, and the question the rest of the library asks a
model through it: which parameters does growth own?

``GrowingLayer`` is a runtime-checkable protocol: ``isinstance(layer, GrowingLayer)`` holds
for every layer in ``LAYERS`` (they share ``StagedLayer``), and for any other module with
the same members. docs/extending.md shows how to add one.
"""

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


@runtime_checkable
class GrowingLayer(Protocol):
    """(..., dim) -> (..., dim) through experts that grow in stages (docs/design.md §2).

    - ``forward(x, stage=None)``: stage None uses every expert, an int s the experts of
      stages 0..s, an integer tensor one stage per sample (over the leading dims of x).
    - ``grow(size, *, init="random")``: append a stage of new experts (``size`` in the
      layer's own unit: sub-keys per side, experts, units), freeze every existing expert,
      and return the new stage's index.
    - ``num_stages``, ``stage_bounds`` (experts after each stage), ``num_experts``.
    - ``register_routing_hook(hook)``: ``hook(layer, idx, gates)`` after each forward, with
      (M, K) expert ids (-1 for an empty slot) and their gates.
    - ``router_mass``: (num_experts,) gates summed over training forwards.
    - ``managed_parameters()``: the parameters growth owns (never regularised or frozen
      as "shared"); ``freeze_routing()``: freeze what routes tokens to every stage.
    - ``active_params_per_token()``: what one token uses, for equal-compute comparisons.
    """

    router_mass: Tensor

    def forward(self, x: Tensor, stage: int | Tensor | None = None) -> Tensor: ...

    def grow(self, size: int, *, init: str = "random") -> int: ...

    @property
    def num_stages(self) -> int: ...

    @property
    def stage_bounds(self) -> list[int]: ...

    @property
    def num_experts(self) -> int: ...

    def register_routing_hook(
        self, hook: Callable[[nn.Module, Tensor, Tensor], None]
    ) -> RemovableHandle: ...

    def managed_parameters(self) -> list[nn.Parameter]: ...

    def freeze_routing(self) -> None: ...

    def active_params_per_token(self) -> int: ...


def managed_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` that growth owns. A module with a
    ``managed_parameters()`` method (a growing layer, ``GrowingExperts``, ``TaskHeads``)
    answers for its whole subtree; every other parameter is shared."""
    if callable(getattr(model, "managed_parameters", None)):
        return list(model.managed_parameters())
    return [p for child in model.children() for p in managed_parameters(child)]

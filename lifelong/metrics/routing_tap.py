"""Routing hooks on a model's expert layers for one evaluation stream.

Both routing metrics (expert usage, MoE load) need the same life cycle: hook every expert
layer when an evaluation starts, record only the experiences that count, and unhook when
it ends, also after an evaluation that raised.
"""

from collections.abc import Callable
from functools import partial

from torch import Tensor, nn


class RoutingTap:
    """Calls ``on_route(name, layer, idx, gates)`` for every routing of the layers that
    ``select(model)`` returns ({name: layer}), while an experience is being recorded."""

    def __init__(
        self,
        select: Callable[[nn.Module], dict[str, nn.Module]],
        on_route: Callable[[str, nn.Module, Tensor, Tensor], None],
    ):
        self._select, self._on_route = select, on_route
        self.layers: dict[str, nn.Module] = {}
        self._handles: list = []
        self.recording = False

    def attach(self, model: nn.Module):
        self.detach()
        self.layers = self._select(model)
        self._handles = [
            layer.register_routing_hook(partial(self._route, name))
            for name, layer in self.layers.items()
        ]

    def detach(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.recording = False

    def start_experience(self, record: bool):
        self.recording = bool(self._handles) and record

    def stop_experience(self) -> bool:
        """Ends the experience; True if it was recorded."""
        was, self.recording = self.recording, False
        return was

    def _route(self, name: str, layer: nn.Module, idx: Tensor, gates: Tensor):
        if self.recording:
            self._on_route(name, layer, idx, gates)

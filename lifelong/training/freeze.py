"""Freeze shared parameters from the second experience on (an Avalanche plugin)."""

from avalanche.core import SupervisedPlugin
from torch import nn

from ..layers import PEER
from ..layers.dense import DenseFFN
from ..layers.moe_common import StagedMoE
from ..models.growing import GrowingExperts
from ..models.heads import TaskHeads

SHARED = "shared"


def growth_managed(model: nn.Module) -> set[int]:
    """ids of the parameters that growth itself protects: expert tables, sub-keys and query
    networks of product-key layers (growth.freeze_query), experts and router rows of MoE
    layers, per-task heads, and the units of a dense FFN that grows (one that has grown,
    or whose ``GrowingExperts`` policy may grow it). A dense FFN under growth.policy=never
    stays a shared parameter, as before dense growth existed."""
    ids = set()
    for module in model.modules():
        if isinstance(module, (PEER, StagedMoE, TaskHeads)):
            ids.update(id(p) for p in module.parameters())
        elif isinstance(module, DenseFFN) and module.num_stages > 1:
            ids.update(id(p) for p in module.parameters())
        elif (
            isinstance(module, GrowingExperts)
            and isinstance(module.layer, DenseFFN)
            and module.policy != "never"
        ):
            ids.update(id(p) for p in module.layer.parameters())
    return ids


class FreezeSharedPlugin(SupervisedPlugin):
    """Before every training experience after the first, freeze the parameters named by
    ``prefixes`` (e.g. "stem", "blocks.0"), or every parameter that growth does not manage
    with the word "shared". Growth protects the old experts; this protects the shared
    parameters that would otherwise drift toward the newest task."""

    def __init__(self, prefixes: list[str]):
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.experiences_seen = 0

    def before_training_exp(self, strategy, *args, **kwargs):
        if self.experiences_seen >= 1 and self.prefixes:
            for param in self.selected(strategy.model):
                param.requires_grad_(False)
                param.grad = None
        self.experiences_seen += 1

    def state_dict(self) -> dict:
        return {"experiences_seen": self.experiences_seen}

    def load_state_dict(self, state: dict, **context) -> None:
        self.experiences_seen = int(state["experiences_seen"])

    def selected(self, model: nn.Module) -> list[nn.Parameter]:
        managed = growth_managed(model)
        named = [(n, p) for n, p in model.named_parameters() if id(p) not in managed]
        if SHARED in self.prefixes:
            return [p for _, p in named]
        unknown = [x for x in self.prefixes if not any(n.startswith(x) for n, _ in named)]
        if unknown:
            roots = sorted({n.split(".")[0] for n, _ in named})
            raise ValueError(
                f"model.freeze_after_first names {unknown}, which match no shared parameter; "
                f"use 'shared' or prefixes of {roots}"
            )
        return [p for n, p in named if n.startswith(self.prefixes)]

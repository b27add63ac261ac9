"""Freeze shared parameters from the second experience on (an Avalanche plugin)."""

from avalanche.core import SupervisedPlugin
from torch import nn

from ..layers import managed_parameters

SHARED = "shared"
BACKBONE = "backbone"  # the shared parameters but the output head (a model's ``head``)


class FreezeSharedPlugin(SupervisedPlugin, supports_distributed=True):
    """Before every training experience after the first, freeze the parameters named by
    ``prefixes`` (e.g. "stem", "blocks.0"), or with the word "shared" every parameter that
    growth does not own (``lifelong.layers.managed_parameters``), or with "backbone" those
    but the output head (the parameters under ``head``: a frozen feature extractor whose
    classifier keeps learning). Growth protects the old experts; this protects the shared
    parameters that would otherwise drift toward the newest task. Data parallel, every
    rank freezes the same parameters by name."""

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
        managed = {id(p) for p in managed_parameters(model)}
        named = [(n, p) for n, p in model.named_parameters() if id(p) not in managed]
        if SHARED in self.prefixes:
            return [p for _, p in named]
        if BACKBONE in self.prefixes:
            return [p for n, p in named if not n.startswith("head.")]
        unknown = [x for x in self.prefixes if not any(n.startswith(x) for n, _ in named)]
        if unknown:
            roots = sorted({n.split(".")[0] for n, _ in named})
            raise ValueError(
                f"model.freeze_after_first names {unknown}, which match no shared parameter; "
                f"use 'shared' or prefixes of {roots}"
            )
        return [p for n, p in named if n.startswith(self.prefixes)]

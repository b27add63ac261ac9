"""Freeze shared parameters from the second experience on (an Avalanche plugin)."""

from avalanche.core import SupervisedPlugin


class FreezeSharedPlugin(SupervisedPlugin):
    """Before every training experience after the first, freeze the parameters whose names
    start with one of ``prefixes`` (e.g. "stem"): growth protects the old experts, this
    protects shared parameters that would otherwise drift toward the newest task."""

    def __init__(self, prefixes: list[str]):
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.experiences_seen = 0

    def before_training_exp(self, strategy, *args, **kwargs):
        if self.experiences_seen >= 1 and self.prefixes:
            names = [n for n, _ in strategy.model.named_parameters()]
            unknown = [p for p in self.prefixes if not any(n.startswith(p) for n in names)]
            if unknown:
                raise ValueError(
                    f"model.freeze_after_first names {unknown}, which match no parameter; "
                    f"parameters start with {sorted({n.split('.')[0] for n in names})}"
                )
            for name, param in strategy.model.named_parameters():
                if name.startswith(self.prefixes):
                    param.requires_grad_(False)
                    param.grad = None
        self.experiences_seen += 1

"""Start every experience with a fresh optimizer state (``train.reset_optimizer=true``).

Avalanche keeps the optimizer's state from one experience to the next. For Adam that
means the moments of the last domain: a second moment that decays with a half-life of
ln 2 / (1 − β₂) ≈ 690 steps (β₂ = 0.999) outlasts a whole experience of a few hundred
steps, so the new domain's steps are scaled by the old domain's gradients, and the first
moment pushes along the old direction for its first ~10 steps. Clearing the state gives
each experience Adam as Kingma & Ba (2015) start it, bias correction included.
"""

from avalanche.core import SupervisedPlugin


class FreshOptimizerPlugin(SupervisedPlugin, supports_distributed=True):
    """Clears the optimizer's per-parameter state before each training experience."""

    def before_training_exp(self, strategy, *args, **kwargs):
        # Called after Avalanche's make_optimizer, which has added the grown parameters.
        strategy.optimizer.state.clear()

"""Online EWC (``ewc``): Schwarz et al. 2018, "Progress & Compress", §3 (online EWC).

One diagonal Fisher F and one anchor θ* for the whole past instead of one per experience
(Kirkpatrick et al. 2017): at the end of every experience

    F  <- γ·F + F_new        F_new = mean over minibatches b of (∂L_b/∂θ)²
    θ* <- θ

and the penalty is ``Σ_i F_i (θ_i - θ*_i)²`` over the shared parameters. F_new is the
empirical Fisher of minibatch gradients (as in Avalanche's EWC), not of per-sample ones:
one backward per minibatch instead of one per sample.
"""

import torch
from avalanche.models.utils import avalanche_forward
from torch import Tensor, nn

from .base import ExperienceData, Regularizer
from .shared import shared_parameters, snapshot, weighted_distance


def empirical_fisher(model: nn.Module, data: ExperienceData) -> dict[str, Tensor]:
    """name -> mean over the experience's minibatches of the squared gradient of the loss,
    for every shared parameter. Runs the model in eval mode (no BatchNorm statistics,
    dropout or router-mass updates) and leaves ``p.grad`` untouched."""
    params = shared_parameters(model)
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    if not params:
        return fisher
    was_training = model.training
    model.eval()
    batches = 0
    try:
        for x, y, t in data.batches():
            loss = data.criterion(avalanche_forward(model, x, t), y)
            # autograd.grad only walks the graph toward the shared parameters, so the
            # (sparse, huge) expert tables cost nothing here.
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for name, g in zip(params, grads, strict=True):
                if g is not None:
                    fisher[name] += (g.to_dense() if g.is_sparse else g).pow(2)
            batches += 1
    finally:
        model.train(was_training)
    return {name: f / max(batches, 1) for name, f in fisher.items()}


class EWCRegularizer(Regularizer):
    """Online EWC over the shared parameters.

    Args:
        decay: γ, how much of the old Fisher survives each new experience. γ=1 sums the
            Fishers, as in van de Ven & Tolias 2019 (docs/design.md §6).
    """

    def __init__(self, decay: float = 1.0):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"ewc decay={decay} must lie in [0, 1]")
        self.decay = decay
        self.fisher: dict[str, Tensor] = {}  # name -> F (same shape as the parameter)
        self.anchor: dict[str, Tensor] = {}  # name -> θ*

    def penalty(self, model: nn.Module, *, x, task_labels, output) -> Tensor:
        return weighted_distance(model, self.anchor, self.fisher)

    def after_experience(self, model: nn.Module, data: ExperienceData) -> None:
        new = empirical_fisher(model, data)
        for name, f in new.items():
            old = self.fisher.get(name)
            if old is not None and old.shape == f.shape:
                new[name] = self.decay * old + f
        self.fisher = new
        self.anchor = snapshot(model)

"""Synaptic Intelligence (``si``): Zenke, Poole & Ganguli 2017, Eq. 3-5.

During an experience each parameter accumulates its contribution to the drop in loss
along the optimisation path, ``ω_i += -g_i·Δθ_i`` per step, where g is the gradient the
optimizer stepped with and Δθ the update it actually applied (so it is exact for Adam
as well as for SGD). At the end of the experience

    Ω_i  <- Ω_i + ω_i / (Δ_i² + ξ)        Δ_i = θ_i(end) - θ_i(start of the experience)
    θ*   <- θ,  ω <- 0

and the penalty is ``Σ_i Ω_i (θ_i - θ*_i)²`` over the shared parameters.

g is the gradient of the whole loss (task loss plus every penalty), as in van de Ven &
Tolias 2019's and Avalanche's implementations; separating out the task-loss gradient
would need a second backward through the penalties. Ω is not clipped (Avalanche clips it
at 0.001, which the paper does not).
"""

from torch import Tensor, nn

from .base import ExperienceData, Regularizer
from .shared import anchored, shared_parameters, snapshot, weighted_distance


class SIRegularizer(Regularizer):
    """Synaptic Intelligence over the shared parameters.

    Args:
        xi: the damping ξ of Eq. 5, which keeps Ω finite for parameters that barely
            moved (Zenke et al. use 1e-3 on split MNIST and 0.1 on split CIFAR).
    """

    def __init__(self, xi: float = 0.1):
        if xi <= 0:
            raise ValueError(f"si xi={xi} must be > 0")
        self.xi = xi
        self.path: dict[str, Tensor] = {}  # name -> ω, this experience's path integral
        self.importance: dict[str, Tensor] = {}  # name -> Ω
        self.anchor: dict[str, Tensor] = {}  # name -> θ*, the end of the last experience
        self.start: dict[str, Tensor] = {}  # name -> θ at the start of this experience
        self._step: dict[str, tuple[Tensor, Tensor]] = {}  # name -> (θ, g) before the step

    def penalty(self, model: nn.Module, *, x, task_labels, output) -> Tensor:
        return weighted_distance(model, self.anchor, self.importance)

    def before_update(self, model: nn.Module) -> None:
        self._step = {}
        for name, p in shared_parameters(model).items():
            start = self.start.get(name)
            if start is None or start.shape != p.shape:  # a new parameter starts its path now
                self.start[name] = p.detach().clone()
            if p.grad is not None:
                g = p.grad.to_dense() if p.grad.is_sparse else p.grad
                self._step[name] = (p.detach().clone(), g.detach().clone())

    def after_update(self, model: nn.Module) -> None:
        before = self._step
        for name, p in shared_parameters(model).items():
            if name not in before or before[name][0].shape != p.shape:
                continue
            theta, g = before[name]
            omega = self.path.get(name)
            if omega is None or omega.shape != p.shape:
                omega = self.path[name] = p.new_zeros(p.shape)
            omega -= g * (p.detach() - theta)
        self._step = {}

    def after_experience(self, model: nn.Module, data: ExperienceData) -> None:
        importance = {}
        for name, p, start in anchored(model, self.start):
            delta = p.detach() - start
            omega = self.path.get(name)
            if omega is None or omega.shape != p.shape:
                omega = p.new_zeros(p.shape)
            old = self.importance.get(name)
            old = old if old is not None and old.shape == p.shape else p.new_zeros(p.shape)
            importance[name] = old + omega / (delta.pow(2) + self.xi)
        self.importance = importance
        self.anchor = snapshot(model)
        self.start = {name: a.clone() for name, a in self.anchor.items()}
        self.path = {}

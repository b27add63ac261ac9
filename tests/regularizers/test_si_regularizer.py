"""Synaptic Intelligence: the path integral and the importance, by hand."""

import pytest
import torch
from torch import nn

from lifelong.regularizers import SIRegularizer

NO_BATCH = dict(x=None, task_labels=None, output=None)


class Scalar(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(value))


def descend(model, reg, opt, steps, target):
    """``steps`` optimizer steps on (θ - target)², with the SI hooks around each."""
    for _ in range(steps):
        opt.zero_grad()
        ((model.theta - target) ** 2).backward()
        reg.before_update(model)
        opt.step()
        reg.after_update(model)


def test_path_integral_and_importance_on_a_quadratic_with_sgd():
    # θ0 = 0, L = (θ - 3)², g = 2(θ - 3), SGD lr 0.25: θ moves 0 -> 1.5 -> 2.25 -> 2.625.
    # ω = Σ -g·Δθ = 6·1.5 + 3·0.75 + 1.5·0.375 = 11.8125, Δ = 2.625,
    # Ω = ω / (Δ² + ξ) = 11.8125 / (6.890625 + 0.1).
    model, reg = Scalar(0.0), SIRegularizer(xi=0.1)
    descend(model, reg, torch.optim.SGD(model.parameters(), lr=0.25), steps=3, target=3.0)
    assert model.theta.item() == 2.625
    assert reg.path["theta"].item() == pytest.approx(11.8125)
    assert reg.penalty(model, **NO_BATCH).item() == 0.0  # no anchor before the experience ends
    reg.after_experience(model, data=None)
    omega = 11.8125 / (2.625**2 + 0.1)
    assert reg.importance["theta"].item() == pytest.approx(omega)
    assert reg.penalty(model, **NO_BATCH).item() == 0.0  # at the anchor
    with torch.no_grad():
        model.theta += 0.5
    assert reg.penalty(model, **NO_BATCH).item() == pytest.approx(omega * 0.25)


def test_importance_accumulates_and_the_path_restarts_at_the_anchor():
    # Experience 2 starts at θ* = 2.625 and descends (θ - 1)² with SGD lr 0.25:
    # g = 3.25, θ -> 2.625 - 0.8125 = 1.8125, ω = 3.25·0.8125 = 2.640625 (plus the
    # penalty's gradient: 0 at the anchor, where the single step starts).
    model, reg = Scalar(0.0), SIRegularizer(xi=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.25)
    descend(model, reg, opt, steps=3, target=3.0)
    reg.after_experience(model, data=None)
    first = reg.importance["theta"].item()
    descend(model, reg, opt, steps=1, target=1.0)
    assert reg.path["theta"].item() == pytest.approx(2.640625)
    reg.after_experience(model, data=None)
    second = 2.640625 / ((1.8125 - 2.625) ** 2 + 0.1)
    assert reg.importance["theta"].item() == pytest.approx(first + second)
    assert reg.anchor["theta"].item() == 1.8125


def test_path_uses_the_update_adam_applied():
    # Adam's first step moves θ by exactly lr: ω = 6·0.1. Later steps are read off θ; an
    # SGD-style estimate lr·g² would give 0.1·6² = 3.6 for the first step alone.
    model, reg = Scalar(0.0), SIRegularizer(xi=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    descend(model, reg, opt, steps=1, target=3.0)
    assert reg.path["theta"].item() == pytest.approx(0.6)
    expected, theta = 0.6, model.theta.item()
    for _ in range(3):
        g = 2 * (theta - 3.0)
        descend(model, reg, opt, steps=1, target=3.0)
        expected += -g * (model.theta.item() - theta)
        theta = model.theta.item()
    assert reg.path["theta"].item() == pytest.approx(expected)


def test_si_rejects_a_non_positive_damping():
    with pytest.raises(ValueError, match="xi=0"):
        SIRegularizer(xi=0)

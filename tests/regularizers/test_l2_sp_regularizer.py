"""L2-SP over what growth added: a pull toward each experience's first step."""

import torch
from torch import nn

from lifelong.regularizers import L2SPRegularizer, build_regularizer

NO_BATCH = dict(x=None, task_labels=None, output=None)


class Grown(nn.Module):
    """A stand-in for a growing layer: it owns an old (frozen) and a new (trainable) table."""

    def __init__(self):
        super().__init__()
        self.old = nn.Parameter(torch.zeros(2, 2), requires_grad=False)
        self.new = nn.Parameter(torch.ones(3, 2))

    def managed_parameters(self):
        return [self.old, self.new]


def model():
    return nn.ModuleDict({"shared": nn.Linear(2, 2), "grown": Grown()})


def test_zero_in_the_first_experience_then_the_distance_from_the_experience_start():
    m, reg = model(), build_regularizer("l2_sp")
    assert isinstance(reg, L2SPRegularizer)
    with torch.no_grad():
        m["grown"].new += 5.0  # first experience: nothing to start from
    assert reg.penalty(m, **NO_BATCH).item() == 0.0
    reg.after_experience(m, data=None)
    with torch.no_grad():
        m["grown"].new.fill_(2.0)  # grown and initialised before the next experience
    assert reg.penalty(m, **NO_BATCH).item() == 0.0  # the first step takes θ⁰ = 2
    with torch.no_grad():
        m["grown"].new[0, 0] = 2.5
        m["grown"].new[2, 1] = 1.0
        m["shared"].weight += 3.0  # shared: not this regulariser's
        m["grown"].old += 3.0  # frozen by growth: not pulled either
    assert reg.penalty(m, **NO_BATCH).item() == 0.5**2 + 1.0**2


def moved_by_one_after_a_first_step():
    """A model whose new table moved by 1 since the second experience's first step."""
    m, reg = model(), L2SPRegularizer()
    reg.after_experience(m, data=None)
    reg.penalty(m, **NO_BATCH)
    with torch.no_grad():
        m["grown"].new += 1.0
    return m, reg


def test_gradient_reaches_only_the_trainable_grown_parameters():
    m, reg = moved_by_one_after_a_first_step()
    reg.penalty(m, **NO_BATCH).backward()
    assert torch.equal(m["grown"].new.grad, torch.full((3, 2), 2.0))  # d/dθ (θ - θ⁰)² = 2·1
    assert m["shared"].weight.grad is None


def test_a_new_experience_takes_a_new_start():
    m, reg = moved_by_one_after_a_first_step()
    assert reg.penalty(m, **NO_BATCH).item() == 6.0  # six entries, each 1 away
    reg.after_experience(m, data=None)
    assert reg.penalty(m, **NO_BATCH).item() == 0.0  # θ⁰ moved to where it is now

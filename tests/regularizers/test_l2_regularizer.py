"""L2 toward the previous experience's weights."""

import torch
from torch import nn

from lifelong.regularizers import L2Regularizer

NO_BATCH = dict(x=None, task_labels=None, output=None)


def test_l2_is_zero_before_and_at_the_anchor_and_the_squared_distance_away():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    reg = L2Regularizer()
    assert reg.penalty(model, **NO_BATCH).item() == 0.0  # nothing to protect yet
    reg.after_experience(model, data=None)
    assert reg.penalty(model, **NO_BATCH).item() == 0.0
    with torch.no_grad():
        model.weight[0, 0] += 0.5
        model.bias[1] -= 0.25
    assert reg.penalty(model, **NO_BATCH).item() == 0.5**2 + 0.25**2


def test_l2_gradient_pulls_back_toward_the_anchor():
    model = nn.Linear(1, 1, bias=False)
    reg = L2Regularizer()
    reg.after_experience(model, data=None)
    with torch.no_grad():
        model.weight += 2.0
    reg.penalty(model, **NO_BATCH).backward()
    assert model.weight.grad.item() == 4.0  # d/dw (w - w*)² = 2·2

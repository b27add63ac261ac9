"""L2 toward the previous experience's weights."""

import pytest
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


def test_l2_params_anchors_only_the_named_parameters():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))  # names 0.weight ... 1.bias
    reg = L2Regularizer(params=["1."])
    reg.penalty(model, **NO_BATCH)  # the first step checks the prefixes
    reg.after_experience(model, data=None)
    assert sorted(reg.anchor) == ["1.bias", "1.weight"]
    with torch.no_grad():
        model[0].weight += 10.0  # not anchored: free
        model[1].bias += 0.5
    assert reg.penalty(model, **NO_BATCH).item() == 0.25


def test_l2_params_that_name_nothing_fail_at_the_first_step_with_the_names():
    model = nn.Linear(2, 2)
    reg = L2Regularizer(params=["tok."])
    with pytest.raises(ValueError, match=r"no shared parameter's name starts with 'tok.'.*weight"):
        reg.penalty(model, **NO_BATCH)
    with pytest.raises(ValueError, match=r"a list of parameter-name prefixes"):
        L2Regularizer(params="tok.")  # a string would be read as its characters

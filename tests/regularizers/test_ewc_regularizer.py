"""Online EWC: empirical Fisher, decayed accumulation, penalty."""

import pytest
import torch
from avalanche.training.plugins import EWCPlugin
from torch import nn
from torch.utils.data import TensorDataset

from lifelong.regularizers import EWCRegularizer, ExperienceData, empirical_fisher

NO_BATCH = dict(x=None, task_labels=None, output=None)


def data(x, y, batch_size=2, criterion=None):
    t = torch.zeros(len(x), dtype=torch.long)
    return ExperienceData(
        dataset=TensorDataset(torch.tensor(x), torch.tensor(y), t),
        criterion=criterion or nn.MSELoss(),
        device=torch.device("cpu"),
        batch_size=batch_size,
        task_labels=(0,),
    )


def scalar_model(w: float) -> nn.Linear:
    """y = w·x, one weight."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(w)
    return model


def test_fisher_is_the_mean_squared_minibatch_gradient():
    # w = 2, loss = mean((w·x - y)²), dL/dw = mean(2·(w·x - y)·x).
    # Minibatch 1: x = [1, 2], y = [0, 0]: residuals [2, 4], gradient mean([4, 16]) = 10.
    # Minibatch 2: x = [3], y = [5]: residual 1, gradient 6.   F = (10² + 6²) / 2 = 68.
    fisher = empirical_fisher(scalar_model(2.0), data([[1.0], [2.0], [3.0]], [[0.0], [0.0], [5.0]]))
    assert fisher["weight"].item() == pytest.approx(68.0)


def test_online_ewc_penalty_and_decayed_accumulation():
    model = scalar_model(2.0)
    reg = EWCRegularizer(decay=0.5)
    assert reg.penalty(model, **NO_BATCH).item() == 0.0
    reg.after_experience(model, data([[1.0], [2.0], [3.0]], [[0.0], [0.0], [5.0]]))
    assert reg.penalty(model, **NO_BATCH).item() == 0.0  # at the anchor
    with torch.no_grad():
        model.weight.fill_(2.5)
    assert reg.penalty(model, **NO_BATCH).item() == pytest.approx(68.0 * 0.5**2)
    # Second experience ends at w = 1 on x = [1], y = [0]: gradient 2, F_new = 4.
    with torch.no_grad():
        model.weight.fill_(1.0)
    reg.after_experience(model, data([[1.0]], [[0.0]]))
    assert reg.fisher["weight"].item() == pytest.approx(0.5 * 68.0 + 4.0)
    with torch.no_grad():
        model.weight.fill_(0.0)
    assert reg.penalty(model, **NO_BATCH).item() == pytest.approx(38.0 * 1.0**2)


def test_fisher_matches_avalanche_ewc_importances():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x, y = torch.randn(10, 5), torch.randint(0, 3, (10,))
    exp = ExperienceData(
        dataset=TensorDataset(x, y, torch.zeros(10, dtype=torch.long)),
        criterion=nn.CrossEntropyLoss(),
        device=torch.device("cpu"),
        batch_size=4,
        task_labels=(0,),
    )
    ours = empirical_fisher(model, exp)
    theirs = EWCPlugin(1.0).compute_importances(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        exp.dataset,
        "cpu",
        batch_size=4,
    )
    assert set(ours) == set(theirs)
    for name, f in ours.items():
        torch.testing.assert_close(f, theirs[name].data)


def test_fisher_leaves_gradients_and_training_mode_alone():
    model = scalar_model(2.0)
    model.weight.grad = torch.full_like(model.weight, 7.0)
    model.train()
    empirical_fisher(model, data([[1.0]], [[0.0]]))
    assert model.training and model.weight.grad.item() == 7.0


def test_ewc_rejects_a_decay_outside_0_1():
    with pytest.raises(ValueError, match="decay=1.5"):
        EWCRegularizer(decay=1.5)

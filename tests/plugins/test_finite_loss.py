"""FiniteLossPlugin: NaN and Inf losses stop the run before the backward pass."""

from types import SimpleNamespace

import pytest
import torch

from lifelong.plugins import FiniteLossPlugin, NonFiniteLossError


def _strategy(loss: float, experience: int = 3, iteration: int = 17):
    clock = SimpleNamespace(train_exp_iterations=iteration, train_exp_epochs=1)
    return SimpleNamespace(
        loss=torch.tensor(loss),
        clock=clock,
        experience=SimpleNamespace(current_experience=experience),
    )


@pytest.mark.parametrize(
    "value,kind", [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "inf")]
)
def test_non_finite_loss_names_its_kind_experience_and_iteration(value, kind):
    with pytest.raises(NonFiniteLossError) as err:
        FiniteLossPlugin().before_backward(_strategy(value))
    message = str(err.value)
    assert message.startswith(f"training loss is {kind} at experience 3, iteration 17")
    assert "resume=true" in message


def test_finite_loss_passes():
    FiniteLossPlugin().before_backward(_strategy(2.5))  # raises nothing

"""Every layer in ``LAYERS`` keeps the ``GrowingLayer`` contract (in the style of timm's
test_models.py: one table of checks, run on every registered model)."""

import pytest
from contract_checks import CHECKS, Subject

from lifelong.config import load_config
from lifelong.experiment import build_layer, fitted_options
from lifelong.layers import LAYERS


def subject(name: str) -> Subject:
    """The layer as a run with default options at width 16 builds it."""
    cfg = load_config(None, [f"model.ffn={name}", "model.dim=16"])
    _, grow_size = build_layer(cfg)
    return Subject(name, LAYERS[name], 16, fitted_options(cfg), grow_size)


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_keeps_the_contract(name, check):
    check(subject(name))

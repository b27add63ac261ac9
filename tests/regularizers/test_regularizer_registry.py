"""Regularisers by name, and the errors a config typo gets."""

import pytest

from lifelong.regularizers import (
    REGULARIZERS,
    DistillationRegularizer,
    EWCRegularizer,
    GenerativeDistillation,
    L2Regularizer,
    SIRegularizer,
    build_regularizer,
)


def test_every_name_builds_its_class_with_its_options():
    assert sorted(REGULARIZERS) == ["distill", "ewc", "gen_distill", "l2", "l2_sp", "si"]
    assert isinstance(build_regularizer("l2"), L2Regularizer)
    assert build_regularizer("ewc", decay=0.7).decay == 0.7
    assert isinstance(build_regularizer("ewc"), EWCRegularizer)
    assert build_regularizer("si", xi=0.01).xi == 0.01 and isinstance(
        build_regularizer("si"), SIRegularizer
    )
    reg = build_regularizer("distill", temperature=3.0, labels="previous")
    assert isinstance(reg, DistillationRegularizer)
    assert (reg.temperature, reg.labels) == (3.0, "previous")
    reg = build_regularizer("gen_distill", samples=64, batch=8, temperature=2.0)
    assert isinstance(reg, GenerativeDistillation)
    assert (reg.samples, reg.batch, reg.temperature) == (64, 8, 2.0)


def test_each_call_builds_a_fresh_regularizer():
    assert build_regularizer("l2") is not build_regularizer("l2")


def test_unknown_name_or_option_names_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"regularizer 'mas' .* \['l2', 'l2_sp', 'ewc', 'si', 'distill', 'gen_distill'\]",
    ):
        build_regularizer("mas")
    with pytest.raises(ValueError, match=r"no option 'lambda'; its options: \['decay'\]"):
        build_regularizer("ewc", **{"lambda": 1.0})
    with pytest.raises(ValueError, match=r"no option 'decay'; its options: \['params'\]"):
        build_regularizer("l2", decay=1.0)


def test_the_registry_is_read_only():
    with pytest.raises(TypeError):
        REGULARIZERS["mine"] = L2Regularizer

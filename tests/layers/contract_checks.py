"""What every growing layer must do (the ``GrowingLayer`` contract, docs/extending.md), as
checks that take a ``Subject``: test_contract.py runs them on every entry of ``LAYERS``,
test_extending.py on a toy layer registered from a test file."""

import copy
import dataclasses
import types
from dataclasses import dataclass

import pytest
import torch

from lifelong.layers import GrowingLayer, LayerEntry
from lifelong.metrics import expert_usage, kl_nonuniformity
from lifelong.optim import LazyAdamW

TOKENS = 24  # rows of the test input; enough for every expert to see a few under capacity


@dataclass
class Subject:
    """A registered layer, with the options a run would build it with."""

    name: str
    entry: LayerEntry
    dim: int
    options: dict  # build's keyword arguments, widths resolved
    grow_size: int | None

    def build(self, **changes) -> GrowingLayer:
        return self.entry.build(self.dim, **{**self.options, **changes})

    def x(self, seed: int = 1) -> torch.Tensor:
        return torch.randn(TOKENS, self.dim, generator=torch.Generator().manual_seed(seed))


def _train(layer, x, steps: int = 3):
    """A few LazyAdamW steps (with weight decay) on what still trains, all stages routed."""
    params = [p for p in layer.parameters() if p.requires_grad]
    opt = LazyAdamW(params, lr=1e-2, weight_decay=0.1)
    layer.train()
    for _ in range(steps):
        opt.zero_grad()
        y = layer(x)
        aux = getattr(layer, "aux_loss", None)
        ((y - x.flip(0)).pow(2).mean() + (0 if aux is None else aux)).backward()
        opt.step()


def is_a_growing_layer(s: Subject):
    layer = s.build()
    assert isinstance(layer, GrowingLayer)
    assert layer.num_stages == 1 and layer.stage_bounds == [layer.num_experts]
    assert layer.router_mass.shape == (layer.num_experts,)
    assert layer(s.x()).shape == (TOKENS, s.dim)
    assert layer.active_params_per_token() > 0
    managed = {id(p) for p in layer.managed_parameters()}
    assert managed == {id(p) for p in layer.parameters()}


def growth_adds_what_the_registry_says(s: Subject):
    layer = s.build()
    for size in (s.grow_size, 1):
        before, adds = layer.num_experts, s.entry.adds(layer, size)
        stage = layer.grow(size)
        assert stage == layer.num_stages - 1
        assert layer.num_experts == before + adds and layer.stage_bounds[-1] == before + adds
        assert layer.stage_bounds[-2] == before
        assert layer.router_mass.shape == (layer.num_experts,)
    assert layer.num_stages == 3


def old_experts_and_outputs_survive_growth_and_training(s: Subject):
    layer, x = s.build(), s.x()
    _train(layer, x)  # stage 0 learns something first
    layer.eval()
    before = layer(x, stage=0)
    old = {name: p.detach().clone() for name, p in layer.named_parameters()}
    layer.freeze_routing()
    layer.grow(s.grow_size)
    _train(layer, x)
    now = dict(layer.named_parameters())
    for name, value in old.items():
        assert torch.equal(now[name], value), f"{name} moved after growth"
    assert any(name not in old for name in now), "growth added no parameter"
    new = [p for name, p in now.items() if name not in old]
    assert all(p.requires_grad for p in new)
    layer.eval()
    assert torch.equal(layer(x, stage=0), before)


def stage_restricts_routing(s: Subject):
    layer, x = s.build(), s.x()
    layer.grow(s.grow_size)
    layer.grow(1)
    calls = []
    layer.register_routing_hook(lambda _layer, idx, gates: calls.append(idx))
    layer.eval()
    bounds = layer.stage_bounds
    for stage in range(layer.num_stages):
        layer(x, stage=stage)
        assert int(calls[-1].max()) < bounds[stage]
    per_sample = torch.arange(TOKENS) % layer.num_stages  # (TOKENS,) stages 0, 1, 2, 0, ...
    layer(x, stage=per_sample)
    idx = calls[-1]
    for stage in range(layer.num_stages):
        assert int(idx[per_sample == stage].max()) < bounds[stage]
    with pytest.raises(ValueError, match="stage=3 is out of range"):
        layer(x, stage=3)


def routing_hooks_fire_and_usage_sums_to_one(s: Subject):
    layer, x = s.build(), s.x()
    layer.grow(s.grow_size)
    calls = []
    handle = layer.register_routing_hook(lambda *args: calls.append(args))
    layer.train()
    mass_before = layer.router_mass.clone()
    layer(x)
    assert len(calls) == 1
    hooked, idx, gates = calls[0]
    assert hooked is layer and idx.shape == gates.shape and idx.shape[0] == TOKENS
    assert not idx.is_floating_point() and not gates.requires_grad
    kept = idx >= 0
    assert bool((idx[~kept] == -1).all()) and int(idx.max()) < layer.num_experts
    assert bool((gates >= 0).all()) and bool((gates[~kept] == 0).all())
    mass = torch.zeros(layer.num_experts, dtype=torch.float64)
    mass.index_add_(0, idx[kept], gates[kept].double())  # usage z' (docs/design.md §4)
    assert float((mass / mass.sum()).sum()) == pytest.approx(1.0)
    assert 0 < expert_usage(mass) <= 1 and kl_nonuniformity(mass) >= 0
    # The router mass (what upcycling ranks) grew by exactly what the hook reported.
    torch.testing.assert_close((layer.router_mass - mass_before).double(), mass, rtol=1e-5, atol=0)
    handle.remove()
    layer(x)
    assert len(calls) == 1


def state_dict_round_trips(s: Subject):
    layer, x = s.build(), s.x()
    _train(layer, x, steps=1)
    layer.grow(s.grow_size)
    _train(layer, x, steps=1)
    fresh = s.build()
    fresh.grow(s.grow_size)  # the same architecture: a checkpoint stores no shapes
    fresh.load_state_dict(layer.state_dict())
    layer.eval(), fresh.eval()
    for stage in (None, 0):
        assert torch.equal(fresh(x, stage=stage), layer(x, stage=stage))
    torch.testing.assert_close(fresh.router_mass, layer.router_mass, rtol=0, atol=0)


def deepcopy_and_to_keep_outputs(s: Subject):
    layer, x = s.build(), s.x()
    layer.grow(s.grow_size)
    layer.eval()
    want = layer(x)
    assert torch.equal(copy.deepcopy(layer)(x), want)
    layer.to(torch.float64)
    assert layer(x.double()).dtype == torch.float64
    torch.testing.assert_close(layer(x.double()).float(), want, rtol=1e-4, atol=1e-5)
    layer.to(torch.float32)  # float32 -> float64 -> float32 is exact
    assert torch.equal(layer(x), want)
    layer.grow(1)  # growth still works on the converted layer
    assert layer(x).shape == want.shape


def _bad_value(field: dataclasses.Field):
    """A value of the field's type that no layer accepts, or None to skip the field."""
    kind = field.type
    if isinstance(kind, types.UnionType):  # int | None and the like: the non-None part
        kind = next(t for t in kind.__args__ if t is not type(None))
    return {int: 0, float: -1.0, str: "bogus"}.get(kind)


def bad_arguments_raise_value_errors_naming_them(s: Subject):
    for field in dataclasses.fields(s.entry.options):
        bad = _bad_value(field)
        if field.name == "grow_size" or bad is None:
            continue
        with pytest.raises(ValueError, match=f"{field.name}="):
            s.build(**{field.name: bad})
    layer = s.build()
    with pytest.raises(ValueError, match="size=0"):
        layer.grow(0)
    with pytest.raises(ValueError, match=r"x has shape"):
        layer(torch.randn(3, s.dim + 1))
    assert layer.num_stages == 1, "a refused growth must leave the layer as it was"


CHECKS = [
    is_a_growing_layer,
    growth_adds_what_the_registry_says,
    old_experts_and_outputs_survive_growth_and_training,
    stage_restricts_routing,
    routing_hooks_fire_and_usage_sums_to_one,
    state_dict_round_trips,
    deepcopy_and_to_keep_outputs,
    bad_arguments_raise_value_errors_naming_them,
]

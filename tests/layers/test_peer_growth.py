"""Growth appends experts, freezes the old ones bit for bit, and keeps old stages intact."""

import pytest
import torch

from lifelong.layers import PEER
from lifelong.optim import LazyAdamW


def snapshot(layer, stage):
    """Copies of every sub-key and expert chunk that exists up to `stage`."""
    chunks = [layer.sub_keys1, layer.sub_keys2, layer.down, layer.up]
    return [p.detach().clone() for plist in chunks for p in plist[: stage + 1]]


def train(layer, opt, steps, dim, stage=None):
    for _ in range(steps):
        loss = (layer(torch.randn(64, dim), stage=stage) - torch.randn(64, dim)).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()


def test_grow_adds_2nm_plus_m_squared_experts():
    layer = PEER(8, num_experts=25, heads=2, topk=3)
    assert layer.grow(3) == 1
    assert layer.num_experts == 25 + 2 * 5 * 3 + 9 == 64
    assert layer.grow(1) == 2
    assert layer.num_experts == 81 and layer.num_stages == 3
    assert layer.stage_sub_keys == [5, 8, 9]
    assert [p.shape[0] for p in layer.up] == [25, 39, 17]


@pytest.mark.parametrize(
    "make_opt,sparse_grad",
    [
        (lambda ps: LazyAdamW(ps, lr=1e-2, weight_decay=0.1), True),
        (lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1), False),
        (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1), False),
    ],
)
def test_old_parameters_stay_bit_identical_with_weight_decay_and_momentum(make_opt, sparse_grad):
    dim = 8
    layer = PEER(dim, num_experts=16, heads=2, topk=3, sparse_grad=sparse_grad)
    opt = make_opt(layer.parameters())
    train(layer, opt, 3, dim)  # the old experts now carry optimizer state (momentum)
    layer.grow(2)
    # As Avalanche does: add the new parameters to the existing optimizer.
    known = {id(p) for g in opt.param_groups for p in g["params"]}
    opt.param_groups[0]["params"].extend(p for p in layer.parameters() if id(p) not in known)
    before = snapshot(layer, 0)
    new_before = layer.up[1].detach().clone()
    train(layer, opt, 4, dim)
    after = snapshot(layer, 0)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not torch.equal(new_before, layer.up[1])  # ... while the new stage did train
    if isinstance(opt, LazyAdamW):
        frozen = [*layer.down[:1], *layer.up[:1], *layer.sub_keys1[:1], *layer.sub_keys2[:1]]
        assert not any(p in opt.state for p in frozen), "frozen experts must hold no state"


def test_new_stage_trains():
    dim = 8
    layer = PEER(dim, num_experts=16, heads=2, topk=3)
    layer.grow(2)
    start = layer.up[1].detach().clone()
    train(layer, LazyAdamW(layer.parameters(), lr=1e-2), 3, dim)
    assert not torch.equal(start, layer.up[1])


@pytest.mark.parametrize("stage_as_tensor", [False, True])
def test_old_stage_outputs_bit_identical_after_growth_and_training(stage_as_tensor):
    dim = 8
    layer = PEER(dim, num_experts=16, heads=2, topk=3)
    opt = LazyAdamW(layer.parameters(), lr=1e-2, weight_decay=0.1)
    train(layer, opt, 3, dim)
    layer.eval()
    x = torch.randn(10, 7, dim)
    before = layer(x)

    layer.query.requires_grad_(False)  # freezing the query network: no grad, eval BatchNorm
    for m in (2, 3):
        layer.grow(m)
        layer.train()
        layer.query.eval()
        opt = LazyAdamW([p for p in layer.parameters() if p.requires_grad], lr=1e-2)
        train(layer, opt, 3, dim)
    layer.eval()
    stage = torch.zeros(10, dtype=torch.long) if stage_as_tensor else 0
    assert torch.equal(layer(x, stage=stage), before)
    # The mixed-stage path restricts each sample to its own stage as well.
    mixed = torch.tensor([0, 2] * 5)
    out = layer(x, stage=mixed)
    assert torch.equal(out[0::2], before[0::2])


def test_upcycle_copies_the_most_used_experts():
    dim = 6
    layer = PEER(dim, num_experts=9, heads=1, topk=2, key_dim=4)
    usage = torch.zeros(9)
    usage[4], usage[7] = 5.0, 3.0  # expert 4 most used, then 7; the rest never
    layer.grow(1, init="upcycle", usage=usage, noise=0.0)
    new = layer.down[1]
    assert new.shape[0] == 7
    old = layer.down[0]
    for i in range(7):
        assert torch.equal(new[i], old[4] if i % 2 == 0 else old[7])
    assert torch.equal(layer.up[1][1], layer.up[0][7])


def test_upcycle_defaults_to_the_router_mass_seen_in_training():
    layer = PEER(6, num_experts=9, heads=1, topk=2, key_dim=4)
    layer(torch.randn(32, 6))
    mass = layer.router_mass.clone()
    assert mass.sum() > 0
    torch.testing.assert_close(mass.sum(), torch.tensor(32.0))  # softmax gates sum to 1
    layer.grow(2, init="upcycle", noise=0.0)
    top = int(mass.argmax())
    assert torch.equal(layer.down[1][0], layer.down[0][top])
    assert layer.router_mass.shape == (25,)


def test_routing_hook_sees_every_retrieval_and_can_be_removed():
    layer = PEER(6, num_experts=9, heads=2, topk=2, key_dim=4).eval()
    seen = []
    handle = layer.register_routing_hook(lambda mod, idx, gates: seen.append((idx, gates)))
    x = torch.randn(5, 6)
    layer(x, stage=0)
    idx, gates = seen[0]
    _, want = layer.retrieve(x, stage=0)
    assert torch.equal(idx, want.flatten(1))  # (M, heads*topk)
    torch.testing.assert_close(gates.sum(1), torch.full((5,), 2.0))  # softmax per head
    handle.remove()
    layer(x)
    assert len(seen) == 1

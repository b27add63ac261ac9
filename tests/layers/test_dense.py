"""DenseFFN growth against independent oracles: a literal per-unit sum ``Σ_i σ(w1_i·x)·w2_i``
in float64, hand-computed activation mass, snapshots taken before growth."""

import pytest
import torch
import torch.nn.functional as F

from lifelong.layers.dense import MLP, DenseFFN
from lifelong.metrics import expert_layers
from lifelong.optim import LazyAdamW


def units(layer):
    """W1 (H, d) and W2 (d, H) over every stage, detached copies."""
    w1 = torch.cat([layer.fc1.weight, *layer.fc1_grown]).detach().clone()
    w2 = torch.cat([layer.fc2.weight, *layer.fc2_grown], dim=1).detach().clone()
    return w1, w2


def reference(w1, w2, x, n, act=F.gelu):
    """Literal ``y = Σ_{i<n} σ(w1_i·x)·w2_i`` for one token x (d,), in float64."""
    w1, w2, x = w1.double(), w2.double(), x.double()
    y = torch.zeros(w2.shape[0], dtype=torch.float64)
    for i in range(n):
        y = y + act(w1[i] @ x) * w2[:, i]
    return y


def grown(activation="gelu"):
    """dim 6, stages of 5, 3 and 2 units, in eval mode (no usage mass)."""
    layer = DenseFFN(6, hidden=5, activation=activation)
    layer.grow(3)
    layer.grow(2, init="upcycle", noise=0.1)
    return layer.eval()


def test_an_ungrown_layer_is_the_plain_mlp_in_names_outputs_and_gradients():
    mlp, dense = MLP(6, hidden=5), DenseFFN(6, hidden=5)
    dense.load_state_dict(mlp.state_dict(), strict=False)
    assert [n for n, _ in dense.named_parameters()] == ["fc1.weight", "fc2.weight"]
    assert set(dense.state_dict()) == {"fc1.weight", "fc2.weight", "router_mass"}
    assert dense.active_params_per_token() == sum(p.numel() for p in mlp.parameters())
    x = torch.randn(2, 4, 6)
    assert torch.equal(dense(x), mlp(x)) and torch.equal(dense(x, stage=0), mlp(x))
    dense(x).square().sum().backward()
    mlp(x).square().sum().backward()
    assert torch.equal(dense.fc1.weight.grad, mlp.fc1.weight.grad)
    assert torch.equal(dense.fc2.weight.grad, mlp.fc2.weight.grad)


def test_growth_keeps_every_old_stage_bit_exact():
    layer = DenseFFN(6, hidden=5).eval()
    x = torch.randn(3, 4, 6)
    before = [layer(x)]
    for m, init in ((3, "random"), (2, "upcycle"), (4, "random")):
        layer.grow(m, init=init)
        before.append(layer(x))  # the new stage, newest
        for s, y in enumerate(before):
            assert torch.equal(layer(x, stage=s), y), f"stage {s} changed"
    assert layer.stage_bounds == [5, 8, 10, 14] and layer.num_experts == 14
    assert [layer.stage_bounds[s] for s in range(4)] == [5, 8, 10, 14]
    assert layer.active_params_per_token() == 2 * 6 * 14


@pytest.mark.parametrize("stage", [None, 0, 1, 2])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_stage_restriction_matches_the_literal_sum_over_selected_units(stage, activation):
    layer = grown(activation)
    w1, w2 = units(layer)
    n = [5, 8, 10][2 if stage is None else stage]
    x = torch.randn(7, 6)
    act = F.gelu if activation == "gelu" else F.relu
    want = torch.stack([reference(w1, w2, t, n, act) for t in x]).float()
    torch.testing.assert_close(layer(x, stage=stage), want, rtol=1e-5, atol=1e-6)


def test_per_sample_stages_match_the_reference_in_outputs_and_input_gradients():
    layer = grown()
    w1, w2 = units(layer)
    x = torch.randn(4, 3, 6, requires_grad=True)
    stages = torch.tensor([2, 0, 1, 0])
    y = layer(x, stage=stages)
    xr = x.detach().double().requires_grad_()
    bounds = [5, 8, 10]
    rows = [reference(w1, w2, xr[b, t], bounds[int(stages[b])]) for b in range(4) for t in range(3)]
    want = torch.stack(rows).view(4, 3, 6)
    torch.testing.assert_close(y, want.float(), rtol=1e-5, atol=1e-6)
    target = torch.randn(4, 3, 6)
    ((y - target) ** 2).sum().backward()
    ((want - target.double()) ** 2).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad.float(), rtol=1e-5, atol=1e-5)


def test_old_units_get_no_gradient_and_stay_put_under_lazy_adamw_with_weight_decay():
    layer = DenseFFN(6, hidden=5)
    opt = LazyAdamW(layer.parameters(), lr=0.1, weight_decay=0.5)
    x = torch.randn(16, 6)
    layer(x).square().sum().backward()
    opt.step()  # stage 0 now has AdamW moments, which must not move it after growth
    assert layer.fc1.weight in opt.state
    layer.grow(3)
    opt.add_param_group({"params": [layer.fc1_grown[0], layer.fc2_grown[0]]})  # as Avalanche
    old = [p.detach().clone() for p in (layer.fc1.weight, layer.fc2.weight)]
    new = [p.detach().clone() for p in (layer.fc1_grown[0], layer.fc2_grown[0])]
    for _ in range(3):
        opt.zero_grad()
        layer(x).square().sum().backward()
        assert layer.fc1.weight.grad is None and layer.fc2.weight.grad is None
        assert not layer.fc1.weight.requires_grad and not layer.fc2.weight.requires_grad
        opt.step()
    assert torch.equal(layer.fc1.weight, old[0]) and torch.equal(layer.fc2.weight, old[1])
    assert layer.fc1.weight not in opt.state and layer.fc2.weight not in opt.state
    assert not torch.equal(layer.fc1_grown[0], new[0])
    assert not torch.equal(layer.fc2_grown[0], new[1])


def test_training_mass_is_the_summed_activation_and_upcycling_copies_the_most_used():
    layer = DenseFFN(2, hidden=3, activation="relu")
    with torch.no_grad():
        # unit 0 reads feature 0, unit 1 is dead on positive inputs, unit 2 reads feature 1
        layer.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]]))
        layer.fc2.weight.copy_(torch.arange(6.0).view(2, 3))
    x = torch.tensor([[1.0, 1.0], [2.0, 0.5]])
    layer.train()(x)
    layer.eval()(x * 100)  # evaluation never counts
    assert layer.router_mass.tolist() == [3.0, 0.0, 3.0]
    layer.router_mass[2] = 4.0  # rank: unit 2, unit 0; unit 1 never fired
    layer.grow(5, init="upcycle", noise=0.0)
    src = [2, 0, 2, 0, 2]  # most used first, cycled over the used units only
    assert torch.equal(layer.fc1_grown[0], layer.fc1.weight[src])
    assert torch.equal(layer.fc2_grown[0], layer.fc2.weight[:, src])
    assert layer.router_mass.tolist() == [3.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_upcycling_by_explicit_usage_with_noise():
    layer = DenseFFN(8, hidden=6)
    w1, w2 = units(layer)
    layer.grow(2, init="upcycle", usage=torch.tensor([0.0, 1, 5, 0, 3, 0]), noise=0.01)
    torch.testing.assert_close(layer.fc1_grown[0], w1[[2, 4]], rtol=0, atol=0.1 * float(w1.std()))
    torch.testing.assert_close(
        layer.fc2_grown[0], w2[:, [2, 4]], rtol=0, atol=0.1 * float(w2.std())
    )
    assert not torch.equal(layer.fc1_grown[0], w1[[2, 4]])  # the noise is there


def test_routing_hook_reports_unit_activations_and_pads_missing_units():
    layer = grown("relu")
    w1, _ = units(layer)
    log = []
    handle = layer.register_routing_hook(lambda _l, idx, gates: log.append((idx, gates)))
    x = torch.randn(3, 2, 6)
    layer(x, stage=1)
    idx, gates = log[-1]
    assert idx.shape == (6, 8) and torch.equal(idx[4], torch.arange(8))
    torch.testing.assert_close(gates, F.relu(x.reshape(6, 6) @ w1[:8].t()))
    layer(x, stage=torch.tensor([0, 2, 0]))
    idx, gates = log[-1]
    assert idx.shape == (6, 10)
    assert idx[0].tolist() == [0, 1, 2, 3, 4, -1, -1, -1, -1, -1]  # sample 0: stage 0
    assert torch.equal(idx[2], torch.arange(10))  # sample 1: stage 2
    assert float(gates[0, 5:].abs().sum()) == 0.0
    torch.testing.assert_close(gates[3], F.relu(w1 @ x[1, 1]))
    handle.remove()
    layer(x)
    assert len(log) == 2


def test_only_the_dense_ffn_is_an_expert_layer_for_the_usage_metrics():
    model = torch.nn.ModuleDict({"block": MLP(6, hidden=24), "expert": DenseFFN(6, hidden=5)})
    assert list(expert_layers(model)) == ["expert"]


def test_bad_arguments_name_the_fix():
    layer = DenseFFN(6, hidden=5)
    with pytest.raises(ValueError, match="size=0"):
        layer.grow(0)
    with pytest.raises(ValueError, match="init='dense'"):
        layer.grow(2, init="dense")
    with pytest.raises(ValueError, match=r"expected \(5,\)"):
        layer.grow(2, init="upcycle", usage=torch.ones(4))
    with pytest.raises(ValueError, match="noise=-1"):
        layer.grow(2, noise=-1)
    assert layer.num_stages == 1  # a refused growth changes nothing
    assert layer.fc1.weight.requires_grad
    with pytest.raises(ValueError, match="stage=1 is out of range"):
        layer(torch.randn(2, 6), stage=1)
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 6\)"):
        layer(torch.randn(2, 5))
    with pytest.raises(ValueError, match="activation='tanh'"):
        DenseFFN(6, hidden=5, activation="tanh")

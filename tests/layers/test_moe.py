"""TokenChoiceMoE against independent oracles (dense FFN, literal loops, hand-computed
numbers), and the growth both MoE layers share."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from lifelong.layers.dense import DenseFFN
from lifelong.layers.expert_choice import ExpertChoiceMoE
from lifelong.layers.moe import TokenChoiceMoE
from lifelong.optim import LazyAdamW


def weights(layer):
    """Router (N, d), W1 (N, hidden, d), W2 (N, d, hidden) over every stage, detached."""
    return tuple(torch.cat(list(plist)).detach() for plist in (layer.router, layer.w1, layer.w2))


def record(layer):
    """Route log: a list that gets (idx, gates) of every forward."""
    log = []
    layer.register_routing_hook(lambda _layer, idx, gates: log.append((idx, gates)))
    return log


def reference_token_choice(layer, x, capacity_factor):
    """Literal loops: top-k per token, slots filled first choices first in token order."""
    router, w1, w2 = weights(layer)
    T, N, k = x.shape[0], router.shape[0], layer.topk
    probs = torch.softmax(x @ router.t(), dim=-1)
    choices = [sorted(range(N), key=lambda e, t=t: -float(probs[t, e]))[:k] for t in range(T)]
    cap = T * k if capacity_factor is None else max(1, math.floor(capacity_factor * T / N + 0.5))
    used, kept = [0] * N, set()
    for j in range(k):
        for t in range(T):
            e = choices[t][j]
            if used[e] < cap:
                used[e] += 1
                kept.add((t, j))
    y = torch.zeros_like(x)
    for t in range(T):
        g = torch.stack([probs[t, e] for e in choices[t]])
        if k > 1:
            g = g / g.sum()
        for j, e in enumerate(choices[t]):
            if (t, j) in kept:
                y[t] = y[t] + g[j] * (w2[e] @ F.gelu(w1[e] @ x[t]))
    return y


@pytest.mark.parametrize("capacity_factor", [None, 1.0])
def test_one_expert_top1_equals_the_dense_ffn_in_outputs_and_gradients(capacity_factor):
    dense = DenseFFN(8, hidden=12)
    moe = TokenChoiceMoE(8, num_experts=1, hidden=12, topk=1, capacity_factor=capacity_factor)
    with torch.no_grad():
        moe.w1[0][0].copy_(dense.fc1.weight)
        moe.w2[0][0].copy_(dense.fc2.weight)
    x = torch.randn(3, 5, 8)
    xd, xm = x.clone().requires_grad_(), x.clone().requires_grad_()
    target = torch.randn(3, 5, 8)
    yd, ym = dense(xd), moe(xm)
    torch.testing.assert_close(ym, yd, rtol=1e-6, atol=1e-7)
    ((yd - target) ** 2).sum().backward()
    ((ym - target) ** 2).sum().backward()
    torch.testing.assert_close(xm.grad, xd.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(moe.w1[0].grad[0], dense.fc1.weight.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(moe.w2[0].grad[0], dense.fc2.weight.grad, rtol=1e-5, atol=1e-6)


def crafted(topk):
    """4 experts, dim 4, 8 tokens: tokens 0-3 are e0 and rank experts 0 > 1 > {2, 3};
    tokens 4-7 are e1 and rank 1 > 0 > {2, 3}. capacity_factor 0.5: C = 0.5·8/4 = 1."""
    layer = TokenChoiceMoE(4, num_experts=4, hidden=6, topk=topk, capacity_factor=0.5)
    with torch.no_grad():
        layer.router[0].copy_(
            torch.tensor([[3.0, 2, 0, 0], [2.0, 3, 0, 0], [0.0, 0, 0, 0], [0.0, 0, 0, 0]])
        )
    x = torch.zeros(8, 4)
    x[:4, 0], x[4:, 1] = 1.0, 1.0
    return layer, x


def test_dropped_assignments_are_counted_exactly_top1():
    layer, x = crafted(topk=1)
    x[4:] = x[:4]  # all 8 tokens prefer expert 0: one slot, 7 dropped first choices
    log = record(layer)
    y = layer(x)
    idx, gates = log[0]
    assert idx[:, 0].tolist() == [0, -1, -1, -1, -1, -1, -1, -1]
    assert int((idx == -1).sum()) == 7 and bool((gates[1:] == 0).all())
    assert bool((y[1:] == 0).all()) and bool((y[0] != 0).any())  # dropped: the residual only


def test_first_choices_fill_the_slots_before_second_choices():
    layer, x = crafted(topk=2)
    log = record(layer)
    layer(x)
    idx, _ = log[0]
    # Expert 0 takes token 0's first choice, expert 1 token 4's; the second choices would
    # have fit in token order (token 0 -> expert 1) but come after every first choice.
    expected = [[0, -1]] + [[-1, -1]] * 3 + [[1, -1]] + [[-1, -1]] * 3
    assert idx.tolist() == expected
    assert int((idx == -1).sum()) == 14


def test_aux_loss_equals_the_hand_computation():
    # Router probabilities of 4 tokens over 2 experts (x_t = e_t, router[i, t] = log p):
    #   (0.8, 0.2), (0.6, 0.4), (0.3, 0.7), (0.9, 0.1)
    # first choices 0, 0, 1, 0 -> f = (0.75, 0.25); P = (2.6/4, 1.4/4) = (0.65, 0.35)
    # aux = α · N · Σ f·P = 0.01 · 2 · (0.4875 + 0.0875) = 0.0115
    p = torch.tensor([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.9, 0.1]])
    layer = TokenChoiceMoE(4, num_experts=2, hidden=3, aux_loss_weight=0.01)
    with torch.no_grad():
        layer.router[0].copy_(p.log().t())
    layer(torch.eye(4))
    aux = layer.aux_loss
    assert aux.dim() == 0 and aux.requires_grad
    assert float(aux.detach()) == pytest.approx(0.0115, rel=1e-5)
    layer.aux_loss_weight = 0.5
    layer(torch.eye(4))
    assert float(layer.aux_loss.detach()) == pytest.approx(0.575, rel=1e-5)


@pytest.mark.parametrize("topk", [1, 2])
@pytest.mark.parametrize("capacity_factor", [None, 1.0, 0.5])
def test_output_equals_a_literal_per_token_loop(topk, capacity_factor):
    layer = TokenChoiceMoE(6, num_experts=5, hidden=7, topk=topk, capacity_factor=capacity_factor)
    with torch.no_grad():
        layer.router[0].normal_(0, 1.0)  # spread the choices so capacity binds
    x = torch.randn(2, 13, 6)
    ref = reference_token_choice(layer, x.reshape(-1, 6), capacity_factor).view(2, 13, 6)
    torch.testing.assert_close(layer(x), ref, rtol=1e-5, atol=1e-6)


def test_random_second_draws_in_proportion_and_only_nonzero_probabilities():
    # Every token: router probabilities (0.5, 0.3, 0.2, 0): the first choice is expert 0,
    # the second is 1 with probability 0.3/0.5 and 2 with 0.2/0.5, never expert 3 (its
    # logit -1e4 underflows to a probability of exactly 0).
    layer = TokenChoiceMoE(
        1, num_experts=4, hidden=2, topk=2, capacity_factor=None, random_second=True
    )
    with torch.no_grad():
        layer.router[0].copy_(torch.tensor([[0.5], [0.3], [0.2], [1.0]]).log())
        layer.router[0][3] = -1e4
    x = torch.ones(4000, 1)
    assert float(torch.softmax(layer.router[0].detach().t(), -1)[0, 3]) == 0.0
    log = record(layer)
    torch.manual_seed(1)
    layer(x)
    torch.manual_seed(1)
    layer(x)
    torch.manual_seed(2)
    layer(x)
    (a, _), (b, _), (c, _) = log
    assert torch.equal(a, b) and not torch.equal(a, c)  # seeded by torch.manual_seed
    assert bool((a[:, 0] == 0).all())
    share = torch.bincount(a[:, 1], minlength=4).double() / len(x)
    assert share[0] == 0 and share[3] == 0
    assert float(share[1]) == pytest.approx(0.6, abs=0.03)
    layer.eval()  # evaluation: the deterministic second best
    layer(x)
    assert bool((log[-1][0][:, 1] == 1).all())


# ----------------------------------------------------------------------------- growth
LAYERS = {
    "token_choice": lambda: TokenChoiceMoE(8, num_experts=4, hidden=8, topk=2),
    "expert_choice": lambda: ExpertChoiceMoE(8, num_experts=4, hidden=8),
}


def train(layer, opt, steps, stage=None):
    for _ in range(steps):
        y = layer(torch.randn(4, 8, 8), stage=stage)
        aux = layer.aux_loss
        loss = (y - torch.randn(4, 8, 8)).pow(2).mean() + (0 if aux is None else aux)
        loss.backward()
        opt.step()
        opt.zero_grad()


def old_parameters(layer, stages):
    return [
        p.detach().clone() for plist in (layer.w1, layer.w2, layer.router) for p in plist[:stages]
    ]


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_grow_appends_stages_and_freezes_the_rest(kind):
    layer = LAYERS[kind]()
    assert layer.grow(2) == 1 and layer.grow(3) == 2
    assert layer.stage_bounds == [4, 6, 9] and layer.num_experts == 9 and layer.num_stages == 3
    assert [p.shape[0] for p in layer.router] == [4, 2, 3]
    assert layer.router_mass.shape == (9,)
    flags = [p.requires_grad for plist in (layer.w1, layer.w2, layer.router) for p in plist]
    assert flags == [False, False, True] * 3


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: LazyAdamW(ps, lr=1e-2, weight_decay=0.1),
        lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    ],
    ids=["lazy_adamw", "adamw"],
)
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_training_after_growth_leaves_old_experts_and_router_rows_bit_identical(kind, make_opt):
    layer = LAYERS[kind]()
    opt = make_opt(layer.parameters())
    train(layer, opt, 3)  # the old stage now carries optimizer state
    layer.grow(2)
    known = {id(p) for g in opt.param_groups for p in g["params"]}  # as Avalanche does
    opt.param_groups[0]["params"].extend(p for p in layer.parameters() if id(p) not in known)
    before, new_before = old_parameters(layer, 1), layer.w1[1].detach().clone()
    train(layer, opt, 4)
    after = old_parameters(layer, 1)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not torch.equal(new_before, layer.w1[1])  # ... while the new stage trained


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_stage_restriction_never_picks_later_experts(kind):
    layer = LAYERS[kind]()
    layer.grow(3)
    with torch.no_grad():
        layer.router[1].mul_(100.0)  # make the new experts attractive
    log = record(layer)
    x = torch.randn(4, 8, 8)
    layer(x, stage=0)
    idx = log[-1][0]
    assert int(idx.max()) < 4
    layer(x, stage=torch.tensor([0, 1, 0, 1]))
    idx = log[-1][0].view(4, 8, -1)
    assert int(idx[[0, 2]].max()) < 4 and int(idx[[1, 3]].max()) >= 4
    layer(x)
    assert int(log[-1][0].max()) >= 4


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_old_stage_outputs_are_bit_identical_after_growth_and_training(kind):
    layer = LAYERS[kind]()
    opt = LazyAdamW(layer.parameters(), lr=1e-2, weight_decay=0.1)
    train(layer, opt, 3)
    layer.eval()
    x = torch.randn(4, 8, 8)
    before = layer(x)
    layer.grow(2)
    layer.train()
    train(layer, LazyAdamW([p for p in layer.parameters() if p.requires_grad], lr=1e-2), 3)
    layer.eval()
    assert torch.equal(layer(x, stage=0), before)
    assert torch.equal(layer(x, stage=torch.zeros(4, dtype=torch.long)), before)
    assert not torch.equal(layer(x), before)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_upcycling_copies_experts(kind):
    layer = LAYERS[kind]()
    dense = DenseFFN(8, hidden=8)
    layer.grow(3, init="dense", source=dense)
    for i in range(3):
        assert torch.equal(layer.w1[1][i], dense.fc1.weight)
        assert torch.equal(layer.w2[1][i], dense.fc2.weight)
    usage = torch.tensor([0.0, 5.0, 0.0, 9.0, 0.0, 0.0, 0.0])  # expert 3, then 1, cycled
    layer.grow(3, init="upcycle", usage=usage, noise=0.0)
    for new, src in zip(range(3), (3, 1, 3), strict=True):
        assert torch.equal(layer.w1[2][new], layer.w1[0][src])
        assert torch.equal(layer.w2[2][new], layer.w2[0][src])
    std = float(torch.cat(list(layer.w1)).detach().std())
    layer.grow(1, init="upcycle", noise=0.5)  # default usage: the router mass, all zero
    noise = (layer.w1[3][0] - layer.w1[0][0]).detach()  # ties rank expert 0 first
    assert float(noise.std()) == pytest.approx(0.5 * std, rel=0.3)


def test_from_dense_upcycles_the_initial_experts_and_matches_the_dense_ffn():
    dense = DenseFFN(8, hidden=12)
    layer = TokenChoiceMoE.from_dense(dense, num_experts=4, topk=2, capacity_factor=None)
    assert layer.hidden == 12 and layer.num_experts == 4
    assert all(torch.equal(w, dense.fc1.weight) for w in layer.w1[0])
    x = torch.randn(5, 8)
    # Identical experts and combine weights summing to 1: the dense output.
    torch.testing.assert_close(layer(x), dense(x), rtol=1e-5, atol=1e-6)


def test_router_mass_accumulates_only_in_training_and_deepcopy_works():
    layer = LAYERS["token_choice"]()
    layer.eval()
    layer(torch.randn(16, 8))
    assert float(layer.router_mass.sum()) == 0
    layer.train()
    log = record(layer)
    y = layer(torch.randn(16, 8))
    idx, gates = log[0]
    assert float(layer.router_mass.sum()) == pytest.approx(float(gates.sum()))
    clone = copy.deepcopy(layer)  # aux_loss holds a graph; LwF deep-copies the model
    assert clone.aux_loss is None and layer.aux_loss is not None
    assert torch.equal(clone.router_mass, layer.router_mass) and y.requires_grad


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_experts=0, hidden=4), r"num_experts=0 must be a positive integer"),
        (dict(num_experts=4, hidden=0), r"hidden=0 must be a positive integer"),
        (dict(num_experts=2, hidden=4, topk=3), r"topk=3 exceeds num_experts=2.*1 <= topk <= 2"),
        (dict(num_experts=4, hidden=4, topk=0), r"topk=0 must be a positive integer"),
        (dict(num_experts=4, hidden=4, capacity_factor=0), r"capacity_factor=0 must be a pos"),
        (dict(num_experts=4, hidden=4, aux_loss_weight=-1), r"aux_loss_weight=-1 must be"),
        (dict(num_experts=4, hidden=4, random_second=True), r"random_second=True needs topk=2"),
        (dict(num_experts=4, hidden=4, activation="tanh"), r"activation='tanh'.*gelu.*relu"),
    ],
)
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenChoiceMoE(8, **kwargs)


def test_forward_and_grow_errors():
    layer = TokenChoiceMoE(8, num_experts=4, hidden=4)
    layer.grow(1)
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"x has shape \(4, 7\); expected \(\.\.\., 8\)"):
        layer(torch.randn(4, 7))
    with pytest.raises(ValueError, match=r"stage=2 is out of range.*stages 0\.\.1"):
        layer(x, stage=2)
    with pytest.raises(ValueError, match=r"stage=-1 is out of range"):
        layer(x, stage=torch.tensor([0, -1, 0, 1]))
    with pytest.raises(ValueError, match=r"stage has shape \(3,\).*\(4,\)"):
        layer(x, stage=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"integer tensor"):
        layer(x, stage=torch.zeros(4))
    with pytest.raises(ValueError, match=r"size=0 must be a positive integer"):
        layer.grow(0)
    with pytest.raises(ValueError, match=r"init='copy' is not supported.*dense.*random.*upcycle"):
        layer.grow(1, init="copy")
    with pytest.raises(ValueError, match=r"source is required by init='dense'"):
        layer.grow(1, init="dense")
    with pytest.raises(ValueError, match=r"source has fc1 \(6, 8\).*expected \(4, 8\)"):
        layer.grow(1, init="dense", source=DenseFFN(8, hidden=6))
    with pytest.raises(ValueError, match=r"activation differs"):
        layer.grow(1, init="dense", source=DenseFFN(8, hidden=4, activation="relu"))
    grown = DenseFFN(8, hidden=4)
    grown.grow(2)
    with pytest.raises(ValueError, match="source has grown to 2 stages"):
        layer.grow(1, init="dense", source=grown)
    with pytest.raises(ValueError, match=r"usage has shape \(3,\); expected \(5,\)"):
        layer.grow(1, init="upcycle", usage=torch.ones(3))
    with pytest.raises(ValueError, match=r"noise=-0.1 must be a non-negative number"):
        layer.grow(1, init="upcycle", noise=-0.1)
    assert layer.num_experts == 5  # no failed call grew the layer

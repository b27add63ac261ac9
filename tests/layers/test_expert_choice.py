"""ExpertChoiceMoE against a literal loop over experts (Zhou et al. 2022, §3.1)."""

import math

import pytest
import torch
import torch.nn.functional as F

from lifelong.layers.expert_choice import ExpertChoiceMoE


def reference_expert_choice(router, w1, w2, x, capacity_factor):
    """Each expert e takes the C tokens with the largest S[:, e], S = softmax over experts;
    y[t] = Σ over the experts that took t of S[t, e] · e(x[t])."""
    T, N = x.shape[0], router.shape[0]
    S = torch.softmax(x @ router.t(), dim=-1)  # (T, N)
    C = min(T, max(1, math.floor(capacity_factor * T / N + 0.5)))
    y, picks = torch.zeros_like(x), []
    for e in range(N):
        for t in torch.topk(S[:, e], C).indices.tolist():
            picks.append((t, e))
            y[t] = y[t] + S[t, e] * (w2[e] @ F.gelu(w1[e] @ x[t]))
    return y, picks


@pytest.mark.parametrize("capacity_factor", [0.5, 1.0, 2.0])
def test_outputs_and_gradients_equal_a_literal_loop(capacity_factor):
    layer = ExpertChoiceMoE(6, num_experts=4, hidden=5, capacity_factor=capacity_factor)
    with torch.no_grad():
        layer.router[0].normal_(0, 1.0)
    router, w1, w2 = (
        p.detach().clone().requires_grad_() for p in (layer.router[0], layer.w1[0], layer.w2[0])
    )
    x = torch.randn(3, 7, 6)
    xl, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = layer(xl)
    ref, _ = reference_expert_choice(router, w1, w2, xr.view(-1, 6), capacity_factor)
    torch.testing.assert_close(y, ref.view(3, 7, 6), rtol=1e-5, atol=1e-6)
    target = torch.randn(3, 7, 6)
    ((y - target) ** 2).sum().backward()
    ((ref.view(3, 7, 6) - target) ** 2).sum().backward()
    torch.testing.assert_close(xl.grad, xr.grad, rtol=1e-5, atol=1e-6)
    for mine, theirs in ((layer.router[0], router), (layer.w1[0], w1), (layer.w2[0], w2)):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-6)


def test_each_expert_takes_exactly_c_tokens_and_the_hook_pads_with_minus_one():
    layer = ExpertChoiceMoE(6, num_experts=4, hidden=5, capacity_factor=1.0)
    with torch.no_grad():
        layer.router[0].normal_(0, 2.0)
    log = []
    layer.register_routing_hook(lambda _layer, idx, gates: log.append((idx, gates)))
    x = torch.randn(10, 6)
    y = layer(x)
    assert layer.aux_loss is None
    idx, gates = log[0]
    router, w1, w2 = (p.detach() for p in (layer.router[0], layer.w1[0], layer.w2[0]))
    _, picks = reference_expert_choice(router, w1, w2, x, 1.0)
    mine = {(t, int(e)) for t in range(10) for e in idx[t] if e >= 0}
    assert mine == set(picks)
    # C = round(1.0 · 10 / 4) = 3 (half up): 12 picks in all, 3 per expert.
    assert torch.bincount(idx[idx >= 0], minlength=4).tolist() == [3, 3, 3, 3]
    assert bool((gates[idx < 0] == 0).all()) and bool((gates[idx >= 0] > 0).all())
    unpicked = (idx < 0).all(dim=1)
    assert bool((y[unpicked] == 0).all())  # a token no expert took passes the residual only
    for t in range(10):  # each row lists its experts in ascending order, then the padding
        row = [int(e) for e in idx[t] if e >= 0]
        assert row == sorted(row) and idx[t, : len(row)].tolist() == row


def test_not_causal_a_later_token_changes_an_earlier_output():
    layer = ExpertChoiceMoE(6, num_experts=4, hidden=5, capacity_factor=1.0)
    x = torch.randn(8, 6)
    y = layer(x)
    x2 = x.clone()
    x2[7] = 10 * x[0]  # competes with token 0 for the expert that took it
    assert not torch.equal(layer(x2)[0], y[0])


def test_stage_rows_only_reach_experts_of_their_stage():
    layer = ExpertChoiceMoE(6, num_experts=4, hidden=5, capacity_factor=2.0)
    layer.grow(2)
    log = []
    layer.register_routing_hook(lambda _layer, idx, gates: log.append(idx))
    x = torch.randn(4, 5, 6)
    layer(x, stage=torch.tensor([0, 1, 0, 0]))
    idx = log[-1].view(4, 5, -1)
    assert int(idx[[0, 2, 3]].max()) < 4  # stage-0 samples: the 4 initial experts only
    # C = round(2 · 20 / 6) = 7 picks per expert, but experts 4, 5 may only take the 5
    # tokens of sample 1.
    assert torch.bincount(log[-1][log[-1] >= 0], minlength=6).tolist() == [7, 7, 7, 7, 5, 5]


def test_capacity_factor_errors():
    for bad in (0, -1.0, None, True):
        with pytest.raises(ValueError, match=r"capacity_factor=.* must be a positive number"):
            ExpertChoiceMoE(6, num_experts=4, hidden=5, capacity_factor=bad)

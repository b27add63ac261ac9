"""PKM: exact product-key retrieval, a value readout equal to a literal reference, growth."""

import pytest
import torch

from lifelong.layers import PKM, brute_force_topk
from lifelong.optim import LazyAdamW


@pytest.mark.parametrize("n,k,h", [(4, 2, 1), (8, 8, 2), (11, 5, 3)])
def test_retrieval_equals_brute_force(n, k, h):
    layer = PKM(10, num_experts=n * n, heads=h, topk=k, key_dim=8).eval()
    layer.grow(3)
    x = torch.randn(6, 5, 10)
    for stage in (None, 0, 1):
        scores, idx = layer.retrieve(x, stage=stage)
        keys = layer.expert_keys(stage)
        q = layer.queries(x)
        torch.testing.assert_close(scores, brute_force_topk(q, keys, k).values)
        torch.testing.assert_close((q @ keys.t()).gather(-1, idx), scores)


@pytest.mark.parametrize("sparse_grad", [True, False])
def test_readout_equals_literal_weighted_sum(sparse_grad):
    layer = PKM(12, num_experts=49, heads=3, topk=4, key_dim=6, sparse_grad=sparse_grad)
    x = torch.randn(20, 12, requires_grad=True)
    y = layer(x)
    (y * torch.randn_like(y)).sum().backward()

    # Literal reference: gather the values, weight by softmax(scores), sum over heads and k.
    x_ref = x.detach().clone().requires_grad_()
    values = layer.values[0].detach().clone().requires_grad_()
    scores, idx = layer.retrieve(x_ref)  # (20, h, k); query BatchNorm in training mode
    y_ref = (torch.softmax(scores, -1).unsqueeze(-1) * values[idx]).sum(dim=(1, 2))
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    g = torch.randn_like(y_ref)
    layer.zero_grad()
    x.grad = None
    y = layer(x)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-5)
    assert layer.values[0].grad.is_sparse == sparse_grad
    torch.testing.assert_close(layer.values[0].grad.to_dense(), values.grad, rtol=1e-5, atol=1e-6)


def test_growth_freezes_old_slots_and_keeps_old_stage_outputs():
    layer = PKM(8, num_experts=16, heads=2, topk=3)
    opt = LazyAdamW(layer.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        layer(torch.randn(32, 8)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    layer.eval()
    x = torch.randn(9, 8)
    before, old_values = layer(x), layer.values[0].detach().clone()
    layer.query.requires_grad_(False)
    layer.grow(2)
    layer.train()
    layer.query.eval()
    opt = LazyAdamW([p for p in layer.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        layer(torch.randn(32, 8)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    layer.eval()
    assert torch.equal(layer.values[0], old_values)
    assert torch.equal(layer(x, stage=0), before)
    assert layer.num_experts == 36 and layer.stage_bounds == [16, 36]

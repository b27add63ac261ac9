"""The fast PEER equals Algorithm 1 taken literally, in outputs and in gradients.

Tolerance: float32 sums in a different order, so rtol=1e-4, atol=1e-5.
"""

import pytest
import torch

from lifelong.layers import PEER, ReferencePEER
from lifelong.layers.product_keys import id_to_pair

TOL = dict(rtol=1e-4, atol=1e-5)


def paper_order(layer):
    """Shell-order row i -> the reference's paper index i1*n + i2."""
    n = layer.num_sub_keys
    i1, i2 = id_to_pair(torch.arange(n * n))
    return i1 * n + i2


@pytest.mark.parametrize("activation", ["gelu", "relu"])
@pytest.mark.parametrize("score", ["softmax", "sigmoid"])
@pytest.mark.parametrize("sparse_grad", [True, False])
def test_fast_equals_reference(activation, score, sparse_grad):
    kw = dict(num_experts=64, heads=3, topk=4, key_dim=10, activation=activation, score=score)
    fast = PEER(12, sparse_grad=sparse_grad, **kw)
    ref = ReferencePEER(12, **kw).load_from(fast)
    x = torch.randn(4, 9, 12)
    x_fast = x.clone().requires_grad_()
    x_ref = x.clone().requires_grad_()
    target = torch.randn(4, 9, 12)

    y_fast, y_ref = fast(x_fast), ref(x_ref)
    torch.testing.assert_close(y_fast, y_ref, **TOL)
    ((y_fast - target) ** 2).sum().backward()
    ((y_ref - target) ** 2).sum().backward()

    torch.testing.assert_close(x_fast.grad, x_ref.grad, **TOL)
    for (name, p), q in zip(
        fast.query.named_parameters(), ref.query_proj.parameters(), strict=True
    ):
        torch.testing.assert_close(p.grad, q.grad, **TOL, msg=name)
    torch.testing.assert_close(fast.sub_keys1[0].grad, ref.sub_keys.grad[0], **TOL)
    torch.testing.assert_close(fast.sub_keys2[0].grad, ref.sub_keys.grad[1], **TOL)
    order = paper_order(fast)
    for mine, theirs in ((fast.down[0], ref.w_down_embed), (fast.up[0], ref.w_up_embed)):
        assert mine.grad.is_sparse == sparse_grad
        torch.testing.assert_close(mine.grad.to_dense(), theirs.weight.grad[order], **TOL)


def test_grown_layer_equals_reference_built_at_its_total_size():
    fast = PEER(12, num_experts=16, heads=2, topk=3, key_dim=8)
    fast.grow(2)
    fast.grow(3)
    ref = ReferencePEER(12, num_experts=fast.num_experts, heads=2, topk=3, key_dim=8)
    ref.load_from(fast)
    x = torch.randn(30, 12)
    y_fast, y_ref = fast(x), ref(x)
    torch.testing.assert_close(y_fast, y_ref, **TOL)
    y_fast.pow(2).sum().backward()
    y_ref.pow(2).sum().backward()
    # Only the newest stage is trainable; its rows are the last ones in shell order.
    lo = fast.stage_bounds[1]
    order = paper_order(fast)[lo:]
    torch.testing.assert_close(fast.up[2].grad.to_dense(), ref.w_up_embed.weight.grad[order], **TOL)
    torch.testing.assert_close(
        fast.down[2].grad.to_dense(), ref.w_down_embed.weight.grad[order], **TOL
    )
    assert all(p.grad is None for p in (*fast.up[:2], *fast.down[:2], fast.sub_keys1[0]))

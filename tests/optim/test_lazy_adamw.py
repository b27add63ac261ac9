"""LazyAdamW: exact AdamW on dense gradients, a literal lazy AdamW on sparse rows."""

import math

import torch

from lifelong.optim import LazyAdamW


def sparse(indices, values, size):
    return torch.sparse_coo_tensor(indices, values, size, check_invariants=True)


def lazy_adamw_reference(w, grads, lr, betas, eps, decay, rowwise=False):
    """Row-by-row lazy AdamW, written out literally (the oracle); ``rowwise``: one second
    moment per row, the mean of the row's squared gradient."""
    w = w.clone()
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    for t, (rows, vals) in enumerate(grads, start=1):
        summed = {}
        for r, g in zip(rows.tolist(), vals, strict=True):
            summed[r] = summed.get(r, 0) + g
        for r, g in summed.items():
            m[r] = betas[0] * m[r] + (1 - betas[0]) * g
            square = (g * g).mean() if rowwise else g * g
            v[r] = betas[1] * v[r] + (1 - betas[1]) * square
            w[r] = w[r] * (1 - lr * decay)
            m_hat = m[r] / (1 - betas[0] ** t)
            denom = (v[r] / (1 - betas[1] ** t)).sqrt() + eps
            w[r] = w[r] - lr * m_hat / denom
    return w


def test_sparse_rows_follow_the_literal_lazy_adamw():
    w0 = torch.randn(10, 4)
    p = torch.nn.Parameter(w0.clone())
    opt = LazyAdamW([p], lr=0.1, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.05)
    grads = []
    for _ in range(4):
        rows = torch.randint(0, 10, (6,))  # repeats and disorder: must be summed
        vals = torch.randn(6, 4)
        grads.append((rows, vals))
        p.grad = sparse(rows[None], vals, (10, 4))
        opt.step()
        opt.zero_grad()
    want = lazy_adamw_reference(w0, grads, 0.1, (0.8, 0.9), 1e-6, 0.05)
    torch.testing.assert_close(p.detach(), want, rtol=1e-5, atol=1e-6)


def test_untouched_rows_do_not_move():
    p = torch.nn.Parameter(torch.randn(8, 3))
    before = p.detach().clone()
    opt = LazyAdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = sparse(torch.tensor([[1, 5]]), torch.ones(2, 3), (8, 3))
    opt.step()
    moved = (p.detach() != before).any(dim=1)
    assert moved.tolist() == [False, True, False, False, False, True, False, False]


def test_dense_parameters_match_torch_adamw():
    torch.manual_seed(1)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    ours = LazyAdamW([a], lr=0.05, weight_decay=0.1)
    theirs = torch.optim.AdamW([b], lr=0.05, weight_decay=0.1)
    for _ in range(3):
        g = torch.randn(5, 3)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    torch.testing.assert_close(a, b)


def test_frozen_parameters_release_their_state():
    p = torch.nn.Parameter(torch.randn(4, 2))
    opt = LazyAdamW([p], lr=0.1)
    p.grad = torch.ones(4, 2)
    opt.step()
    assert p in opt.state
    p.requires_grad_(False)
    p.grad = None
    opt.step()
    assert p not in opt.state


def test_amsgrad_on_sparse_gradients_is_refused():
    p = torch.nn.Parameter(torch.randn(4, 2))
    opt = LazyAdamW([p], amsgrad=True)
    p.grad = sparse(torch.tensor([[0]]), torch.ones(1, 2), (4, 2))
    try:
        opt.step()
    except ValueError as e:
        assert "amsgrad" in str(e)
    else:
        raise AssertionError("expected a ValueError")


def test_bias_correction_uses_the_parameter_step_count():
    p = torch.nn.Parameter(torch.zeros(2, 1))
    opt = LazyAdamW([p], lr=1.0, betas=(0.9, 0.999), eps=0.0)
    p.grad = sparse(torch.tensor([[0]]), torch.tensor([[2.0]]), (2, 1))
    opt.step()
    # First Adam step moves by exactly lr * sign(g).
    assert math.isclose(float(p.detach()[0, 0]), -1.0, rel_tol=1e-6)
    assert float(p.detach()[1, 0]) == 0.0


def _train(moments: str, steps: int = 20, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    w0 = torch.randn(50, 8, generator=gen)
    p = torch.nn.Parameter(w0.clone())
    opt = LazyAdamW([p], lr=0.05, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.01, moments=moments)
    grads = []
    for _ in range(steps):
        rows = torch.randint(0, 50, (12,), generator=gen)
        vals = torch.randn(12, 8, generator=gen)
        grads.append((rows, vals))
        p.grad = sparse(rows[None], vals, (50, 8))
        opt.step()
        opt.zero_grad()
    return w0, p.detach(), grads, opt.state[p]


def test_rowwise_second_moments_follow_the_literal_rule():
    w0, got, grads, state = _train("rowwise")
    want = lazy_adamw_reference(w0, grads, 0.05, (0.8, 0.9), 1e-6, 0.01, rowwise=True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert state["exp_avg_sq"].shape == (50, 1)  # one second moment per row


def test_bf16_moments_halve_the_state_and_stay_close_to_fp32():
    _, exact, _, full = _train("fp32")
    _, half, _, small = _train("bf16")
    assert small["exp_avg"].dtype == small["exp_avg_sq"].dtype == torch.bfloat16
    state_bytes = [
        sum(t.numel() * t.element_size() for k, t in st.items() if k != "step")
        for st in (full, small)
    ]
    assert state_bytes[1] * 2 == state_bytes[0]
    # Rounding the moments to bf16 perturbs each step by ~0.4 %: the weights stay close.
    assert (half - exact).abs().max() < 0.02 * exact.abs().max()


def test_bf16_rowwise_keeps_a_bf16_first_moment_and_a_row_second_moment():
    _, row, _, row_state = _train("rowwise")
    _, both, _, state = _train("bf16_rowwise")
    assert state["exp_avg"].dtype == torch.bfloat16 and state["exp_avg"].shape == (50, 8)
    assert state["exp_avg_sq"].dtype == torch.float32 and state["exp_avg_sq"].shape == (50, 1)
    # Only the first moment is rounded: the weights stay close to the float32 row-wise rule.
    assert (both - row).abs().max() < 0.02 * row.abs().max()
    assert not torch.equal(both, row)


def test_unknown_moments_are_refused():
    import pytest

    with pytest.raises(ValueError, match="moments='fp16' is not supported"):
        LazyAdamW([torch.nn.Parameter(torch.zeros(2))], moments="fp16")

"""Product-key search against brute force, and the shell-order id scheme."""

import pytest
import torch

from lifelong.layers.product_keys import id_to_pair, pair_to_id, product_key_topk


@pytest.mark.parametrize("n", [1, 2, 5, 16, 33])
def test_shell_ids_are_a_bijection_whose_prefix_squares_are_id_prefixes(n):
    i1, i2 = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    ids = pair_to_id(i1.reshape(-1), i2.reshape(-1))
    # The n x n prefix square maps onto exactly the ids 0..n²-1 ...
    assert torch.equal(ids.sort().values, torch.arange(n * n))
    # ... and id_to_pair inverts it.
    back1, back2 = id_to_pair(ids)
    assert torch.equal(back1, i1.reshape(-1)) and torch.equal(back2, i2.reshape(-1))


def _product_keys(keys1, keys2):
    n = keys1.shape[0]
    i1, i2 = id_to_pair(torch.arange(n * n))
    return torch.cat([keys1[i1], keys2[i2]], dim=1)  # row i: key of shell id i


@pytest.mark.parametrize("n,k,half", [(4, 1, 3), (8, 4, 8), (16, 16, 5), (31, 7, 16)])
def test_topk_equals_brute_force(n, k, half):
    q = torch.randn(50, 2 * half)
    keys1, keys2 = torch.randn(n, half), torch.randn(n, half)
    scores, ids = product_key_topk(q, keys1, keys2, k)
    full = q @ _product_keys(keys1, keys2).t()  # (50, n²)
    expected = full.topk(k, dim=-1).values
    torch.testing.assert_close(scores, expected)
    # Tie-robust: every returned id really has the returned score.
    torch.testing.assert_close(full.gather(1, ids), scores)
    assert all(len(set(row.tolist())) == k for row in ids)


def test_limit_restricts_each_row_to_its_prefix_square():
    n, k, half = 12, 3, 4
    q = torch.randn(40, 2 * half)
    keys1, keys2 = torch.randn(n, half), torch.randn(n, half)
    limit = torch.randint(k, n + 1, (40,))
    scores, ids = product_key_topk(q, keys1, keys2, k, limit)
    full = q @ _product_keys(keys1, keys2).t()
    for r in range(40):
        allowed = full[r, : int(limit[r]) ** 2]
        torch.testing.assert_close(scores[r], allowed.topk(k).values)
        assert int(ids[r].max()) < int(limit[r]) ** 2


def test_sparse_backward_matches_dense_autograd():
    n, k, half = 20, 5, 6
    q = torch.randn(30, 2 * half, requires_grad=True)
    keys1 = torch.randn(n, half, requires_grad=True)
    keys2 = torch.randn(n, half, requires_grad=True)
    weight = torch.randn(30, k)
    scores, _ = product_key_topk(q, keys1, keys2, k)
    grads = torch.autograd.grad((scores * weight).sum(), (q, keys1, keys2))

    # Dense oracle: autograd through the full product-key score matrix.
    full = q @ _product_keys(keys1, keys2).t()
    ref = torch.autograd.grad((full.topk(k, dim=-1).values * weight).sum(), (q, keys1, keys2))
    for got, want in zip(grads, ref, strict=True):
        torch.testing.assert_close(got, want)

"""PEER retrieval is exact: it equals brute-force top-k over all product keys."""

import pytest
import torch

from lifelong.layers import PEER, brute_force_topk


def assert_exact(layer, x, stage=None):
    scores, idx = layer.retrieve(x, stage=stage)  # (..., h, k)
    keys = layer.expert_keys(stage if isinstance(stage, int) else None)
    q = layer.queries(x)  # (..., h, dk)
    full = q @ keys.t()  # (..., h, N_stage)
    want, _ = brute_force_topk(q, keys, layer.topk)
    torch.testing.assert_close(scores, want, rtol=1e-5, atol=1e-5)
    # Ties allowed: each returned id's true score equals the score returned for it.
    torch.testing.assert_close(full.gather(-1, idx), scores, rtol=1e-5, atol=1e-5)
    assert int(idx.max()) < keys.shape[0]


@pytest.mark.parametrize("n,k,h", [(4, 1, 1), (8, 4, 2), (16, 16, 3), (13, 5, 4)])
def test_retrieval_matches_brute_force(n, k, h):
    layer = PEER(12, num_experts=n * n, heads=h, topk=k, key_dim=10).eval()
    assert_exact(layer, torch.randn(3, 7, 12))


@pytest.mark.parametrize("growths", [[1], [3, 2, 5]])
def test_retrieval_exact_after_growth_and_per_stage(growths):
    layer = PEER(12, num_experts=36, heads=2, topk=4, key_dim=8).eval()
    for m in growths:
        layer.grow(m)
    assert layer.num_stages == len(growths) + 1
    x = torch.randn(5, 4, 12)
    assert_exact(layer, x)
    for stage in range(layer.num_stages):
        assert_exact(layer, x, stage=stage)
        _, idx = layer.retrieve(x, stage=stage)
        assert int(idx.max()) < layer.stage_bounds[stage]


def test_per_sample_stage_tensor():
    layer = PEER(12, num_experts=25, heads=2, topk=3, key_dim=8).eval()
    layer.grow(2)
    layer.grow(3)
    x = torch.randn(6, 5, 12)  # (batch, tokens, dim)
    stage = torch.tensor([0, 2, 1, 0, 1, 2])
    scores, idx = layer.retrieve(x, stage=stage)
    for b in range(6):
        s_b, i_b = layer.retrieve(x[b], stage=int(stage[b]))
        torch.testing.assert_close(scores[b], s_b)
        assert torch.equal(idx[b], i_b)


def test_retrieve_shapes_follow_any_leading_shape():
    layer = PEER(8, num_experts=16, heads=3, topk=2).eval()
    for shape in [(8,), (5, 8), (2, 3, 4, 8)]:
        x = torch.randn(shape)
        scores, idx = layer.retrieve(x)
        assert scores.shape == idx.shape == (*shape[:-1], 3, 2)
        assert layer(x).shape == x.shape
        assert layer.queries(x).shape == (*shape[:-1], 3, 8)

"""Stage selectors against independent oracles: a batch computation of the Gaussian
statistics and a literal Mahalanobis classifier; separable and identical stages."""

import numpy as np
import pytest
import torch

from lifelong.layers import PEER
from lifelong.models import GrowingExperts
from lifelong.models.selectors import GaussianSelector, KeyAffinitySelector, build_selector


def blobs(centres, n=60, dim=6, spread=0.3, seed=0):
    """One (n, dim) sample per centre, Gaussian around it."""
    gen = torch.Generator().manual_seed(seed)
    return [c + spread * torch.randn(n, dim, generator=gen) for c in centres]


def test_gaussian_statistics_equal_a_batch_computation():
    gen = torch.Generator().manual_seed(1)
    data = [torch.randn(40, 5, generator=gen) + e for e in range(3)]
    labels = [torch.randint(0, 2, (40,), generator=gen) + 2 * e for e in range(3)]
    sel = GaussianSelector(5, shrinkage=0.2, per_class=True)
    for e, (x, y) in enumerate(zip(data, labels, strict=True)):
        for part in (slice(0, 13), slice(13, 40)):  # in chunks, as batches arrive
            sel.update(e, x[part], y[part])
    # The oracle: numpy over all the samples at once.
    X = np.concatenate([d.numpy() for d in data]).astype(np.float64)
    Y = np.concatenate([y.numpy() for y in labels])
    E = np.repeat(np.arange(3), 40)
    keys = sorted(set(zip(E.tolist(), Y.tolist(), strict=True)))
    assert sorted(zip(sel.experience.tolist(), sel.label.tolist(), strict=True)) == keys
    for k, (e, c) in enumerate(zip(sel.experience.tolist(), sel.label.tolist(), strict=True)):
        rows = X[(E == e) & (Y == c)]
        assert sel.counts[k] == len(rows)
        np.testing.assert_allclose(sel.sums[k].numpy(), rows.sum(0), rtol=1e-12)
    means = {key: X[(E == key[0]) & (Y == key[1])].mean(0) for key in keys}
    centred = X - np.stack([means[e, c] for e, c in zip(E, Y, strict=True)])
    cov = centred.T @ centred / (len(X) - len(keys))  # pooled within-component
    shrunk = 0.8 * cov + 0.2 * np.trace(cov) / 5 * np.eye(5)
    # A literal Mahalanobis mixture classifier over the same components.
    queries = np.random.default_rng(0).normal(1, 1.5, size=(50, 5))
    precision = np.linalg.inv(shrunk)
    expected = []
    for q in queries:
        per_exp = []
        for e in range(3):
            comps = [key for key in keys if key[0] == e]
            weights = [np.mean((E == e) & (Y == key[1])) / np.mean(E == e) for key in comps]
            logs = [
                np.log(w) - 0.5 * (q - means[key]) @ precision @ (q - means[key])
                for w, key in zip(weights, comps, strict=True)
            ]
            per_exp.append(np.logaddexp.reduce(logs))
        expected.append(np.argmax(per_exp))
    got = sel.scores(torch.tensor(queries, dtype=torch.float32)).argmax(-1).numpy()
    assert (got == np.array(expected)).mean() == 1.0
    assert sel.nbytes() == sum(b.numel() * b.element_size() for b in sel.buffers())


def test_gaussian_state_round_trips_into_a_fresh_selector():
    sel = GaussianSelector(4, random_features=16, seed=3)
    for e, x in enumerate(blobs([torch.zeros(4), 3 * torch.ones(4)], dim=4)):
        sel.update(e, x)
    fresh = GaussianSelector(4, random_features=16, seed=3)
    fresh.load_state_dict(sel.state_dict())
    x = torch.randn(10, 4)
    assert torch.equal(fresh.scores(x), sel.scores(x))


def grown_layer(experiences: int, dim: int = 6) -> GrowingExperts:
    """PEER in GrowingExperts with inferred routing, adapted to ``experiences`` experiences."""
    layer = PEER(dim, num_experts=16, heads=2, topk=2)
    module = GrowingExperts(
        layer, grow_size=1, routing="inferred", selector=build_selector("gaussian", dim=dim)
    )

    class Experience:
        def __init__(self, e):
            self.current_experience = e

    module.train()
    for e in range(experiences):
        module.adaptation(Experience(e))
    return module


def test_inferred_routing_picks_the_right_stage_on_separable_data():
    centres = [torch.full((6,), 4.0 * e) for e in range(3)]
    train, test = blobs(centres, seed=0), blobs(centres, seed=1)
    module = grown_layer(3)
    for e, x in enumerate(train):
        module.selector.update(e, x)
    module.eval()
    for e, x in enumerate(test):
        ids = module.task_ids(x, None)
        assert torch.equal(ids, torch.full((60,), e))
        assert module.stages_for(ids).tolist() == [module.task_stage[e].item()] * 60
    assert module.layer.num_stages == 3


def test_identical_stages_fail_gracefully():
    """Two experiences with the same distribution cannot be told apart: inference picks one
    of them for each sample, at about chance, and the model still computes."""
    same = blobs([torch.zeros(6), torch.zeros(6)], seed=0)
    module = grown_layer(2)
    for e, x in enumerate(same):
        module.selector.update(e, x)
    module.eval()
    x = blobs([torch.zeros(6)], n=400, seed=5)[0]
    ids = module.task_ids(x, None)
    assert set(ids.tolist()) <= {0, 1} and 0.2 < ids.float().mean() < 0.8
    assert torch.isfinite(module(x, ids=ids)).all()


def test_key_affinity_equals_a_literal_top_k_over_each_stage_s_own_experts():
    module = grown_layer(2)
    layer = module.layer
    layer.freeze_routing()
    module.eval()
    x = torch.randn(30, 6)
    scores = KeyAffinitySelector().scores(x, layer=layer, stage_of=module.task_stage)
    # The oracle: every expert's full key, brute force, per head and stage.
    with torch.no_grad():
        q = layer.queries(x)  # (30, h, dk)
        keys = layer.expert_keys()  # (N, dk), row i = expert i
        bounds = [0, *layer.stage_bounds]
        expected = torch.stack(
            [
                (q @ keys[bounds[s] : bounds[s + 1]].T).topk(layer.topk, -1).values.sum((-1, -2))
                for s in range(2)
            ],
            -1,
        )  # (30, 2)
    torch.testing.assert_close(scores, expected)
    unknown = KeyAffinitySelector().scores(x, layer=layer, stage_of=torch.tensor([0, -1]))
    assert torch.isinf(unknown[:, 1]).all() and torch.equal(unknown[:, 0], expected[:, 0])


def test_bad_selector_arguments():
    with pytest.raises(ValueError, match="shrinkage=1.5"):
        GaussianSelector(4, shrinkage=1.5)
    with pytest.raises(ValueError, match="selector='lda'"):
        build_selector("lda", dim=4)
    with pytest.raises(ValueError, match="selector goes with routing='inferred'"):
        GrowingExperts(
            PEER(6, num_experts=16, topk=2), routing="task_aware", selector=GaussianSelector(6)
        )

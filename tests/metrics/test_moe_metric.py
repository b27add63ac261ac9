"""MoE metrics (docs/design.md §3): the counts against hand-computed values, and MoEMetric
in a real Avalanche run checked against routing recomputed from each MoE layer's captured
input."""

import math

import numpy as np
import pytest
import torch
from tiny_runs import CLASSES, IN_DIM, MemoryLogger, classification_benchmark, make_strategy
from torch import nn

from lifelong.layers import PEER
from lifelong.layers.expert_choice import ExpertChoiceMoE
from lifelong.layers.moe import TokenChoiceMoE
from lifelong.metrics import ExpertUsageMetric
from lifelong.metrics.moe_metric import (
    MoEMetric,
    _Tally,
    coefficient_of_variation,
    moe_layers,
    tokens_per_expert,
)

DROPPED, CV = (
    "lifelong/DroppedTokens/eval_phase/test_stream",
    "lifelong/TokensPerExpertCV/eval_phase/test_stream",
)


def tally_of(*batches: list[list[int]], num_experts: int) -> _Tally:
    """A tally of forwards whose (M, K) expert ids are the given nested lists."""
    tally = _Tally()
    for idx in batches:
        tally.add(torch.tensor(idx), num_experts)
    return tally


def test_counts_against_hand_computed_values():
    idx = [[0, -1], [2, -1], [-1, -1], [0, 1]]  # (4 tokens, 2 slots), -1: empty slot
    assert tokens_per_expert(torch.tensor(idx), 4).tolist() == [2, 1, 1, 0]
    tally = tally_of(idx, num_experts=4)
    # token choice: 4 of the 8 slots are -1; counts (2, 1, 1, 0): mean 1, population
    # variance (1 + 0 + 0 + 1) / 4 = 0.5, CV = √0.5
    assert tally.stats(per_token=False) == {
        "dropped_token_pct": pytest.approx(50.0),
        "tokens_per_expert_cv": pytest.approx(math.sqrt(0.5)),
    }
    # expert choice: a dropped token is one no expert picked, token 2 of 4
    assert tally.stats(per_token=True)["dropped_token_pct"] == pytest.approx(25.0)
    assert coefficient_of_variation(torch.tensor([0, 0, 6])) == pytest.approx(math.sqrt(2))


def test_edge_cases():
    even = tally_of([[1], [0]], num_experts=2)
    assert even.stats(per_token=False) == {"dropped_token_pct": 0.0, "tokens_per_expert_cv": 0.0}
    lost = tally_of([[-1, -1]] * 3, num_experts=4)  # no token reached any expert
    nothing_routed = {"dropped_token_pct": 100.0, "tokens_per_expert_cv": None}
    assert lost.stats(per_token=False) == lost.stats(per_token=True) == nothing_routed
    empty = _Tally()  # a forward of zero tokens
    empty.add(torch.zeros(0, 2, dtype=torch.long), 2)
    no_token = {"dropped_token_pct": 0.0, "tokens_per_expert_cv": None}
    assert empty.stats(per_token=False) == empty.stats(per_token=True) == no_token


def test_tallies_merge_across_a_growth():
    # Experience 0 with 2 experts, experience 1 after growing to 3: counts add up per
    # expert id, the new expert's count starting at 0.
    first = tally_of([[0, 1], [0, -1]], num_experts=2)  # counts (2, 1), 1 of 4 slots -1
    second = tally_of([[2, -1], [-1, -1]], num_experts=3)  # counts (0, 0, 1), 3 of 4 slots
    total = _Tally()
    total.merge(first)
    total.merge(second)
    assert total.per_expert.tolist() == [2, 1, 1]
    # 4 of 8 slots dropped; 1 of 4 tokens unrouted; counts (2, 1, 1): mean 4/3,
    # variance ((2/3)² + 2 (1/3)²) / 3 = 2/9, CV = (√2 / 3) / (4/3) = √2 / 4
    assert total.stats(per_token=False) == {
        "dropped_token_pct": pytest.approx(50.0),
        "tokens_per_expert_cv": pytest.approx(math.sqrt(2) / 4),
    }
    assert total.stats(per_token=True)["dropped_token_pct"] == pytest.approx(25.0)
    assert first.per_expert.tolist() == [2, 1]  # merging left the parts alone


class MoENet(nn.Module):
    """(B, 64) -> (B, 10) through a top-1 token-choice layer "tc" (capacity 1) and an
    expert-choice layer "ec", both residual."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(IN_DIM, 16)
        self.tc = TokenChoiceMoE(16, num_experts=4, hidden=16, topk=1, capacity_factor=1.0)
        self.ec = ExpertChoiceMoE(16, num_experts=4, hidden=16, capacity_factor=1.0)
        self.out = nn.Linear(16, CLASSES)

    def forward(self, x):
        h = self.inp(x)
        h = h + self.tc(h)
        return self.out(h + self.ec(h))


def slots(M: int, N: int) -> int:
    return min(M, max(1, math.floor(M / N + 0.5)))  # capacity factor 1, half up


def token_choice_oracle(layer, h):
    """Literal Switch dispatch of one batch: (dropped, per-expert kept counts and mass)."""
    N = layer.num_experts
    probs = torch.softmax(h @ torch.cat(list(layer.router)).detach().t(), dim=-1)
    C, kept, mass, dropped = slots(h.shape[0], N), [0] * N, [0.0] * N, 0
    for t in range(h.shape[0]):
        e = int(probs[t].argmax())
        if kept[e] < C:
            kept[e] += 1
            mass[e] += float(probs[t, e])
        else:
            dropped += 1
    return dropped, np.array(kept), np.array(mass)


def expert_choice_oracle(layer, h):
    """Tokens no expert picks in one batch (each expert takes its top-C tokens)."""
    N = layer.num_experts
    S = torch.softmax(h @ torch.cat(list(layer.router)).detach().t(), dim=-1)
    C = slots(h.shape[0], N)
    picked = {t for e in range(N) for t in torch.topk(S[:, e], C).indices.tolist()}
    return h.shape[0] - len(picked)


def cv(counts) -> float:
    counts = np.asarray(counts, dtype=np.float64)
    return float(counts.std() / counts.mean())


@pytest.fixture(scope="module")
def moe_run():
    """2 experiences, both layers grown by 2 experts before the second; during the last
    evaluation forward pre-hooks capture each layer's input per test experience."""
    torch.manual_seed(0)
    bm = classification_benchmark(2, n_train=64, n_test=40)
    model = MoENet()
    metric, usage, logger = MoEMetric(), ExpertUsageMetric(model, heatmaps=False), MemoryLogger()
    strategy = make_strategy(model, [metric, usage], logger, epochs=2, mb=32)
    inputs = {"tc": {}, "ec": {}}

    def capture(name):
        def hook(_module, args):
            j = strategy.experience.logging().current_experience
            inputs[name].setdefault(j, []).append(args[0].detach().clone())

        return hook

    hooks_in_training = []
    for i, exp in enumerate(bm.train_stream):
        if i:
            model.tc.grow(2)
            model.ec.grow(2)
        strategy.train(exp)
        hooks_in_training.append(len(model.tc._routing_hooks) + len(model.ec._routing_hooks))
        handles = []
        if i == 1:
            handles = [getattr(model, n).register_forward_pre_hook(capture(n)) for n in inputs]
        strategy.eval(bm.test_stream)
        for handle in handles:
            handle.remove()
    return model, metric, usage, logger, inputs, hooks_in_training


def test_dropped_tokens_and_cv_equal_the_recomputed_routing(moe_run):
    model, metric, _, logger, inputs, _ = moe_run
    totals = {"tc": [0, 0, np.zeros(6)], "ec": [0, 0]}
    for j, batches in inputs["tc"].items():
        assert [h.shape[0] for h in batches] == [32, 8]
        results = [token_choice_oracle(model.tc, h) for h in batches]
        dropped = sum(r[0] for r in results)
        kept = sum(r[1] for r in results)
        assert logger.values(f"{DROPPED}/Exp{j:03d}/tc")[-1] == (
            2,
            pytest.approx(100 * dropped / 40),
        )
        assert logger.values(f"{CV}/Exp{j:03d}/tc")[-1] == (2, pytest.approx(cv(kept)))
        totals["tc"][0] += dropped
        totals["tc"][1] += 40
        totals["tc"][2] += kept
    assert totals["tc"][0] > 0  # capacity 1 did drop tokens: the test measures something
    dropped, tokens, kept = totals["tc"]
    assert logger.values(f"{DROPPED}/tc")[-1] == (2, pytest.approx(100 * dropped / tokens))
    assert logger.values(f"{CV}/tc")[-1] == (2, pytest.approx(cv(kept)))
    assert metric.latest_overall()["tc"] == {
        "dropped_token_pct": pytest.approx(100 * dropped / tokens),
        "tokens_per_expert_cv": pytest.approx(cv(kept)),
    }
    for j, batches in inputs["ec"].items():
        unrouted = sum(expert_choice_oracle(model.ec, h) for h in batches)
        assert logger.values(f"{DROPPED}/Exp{j:03d}/ec")[-1] == (
            2,
            pytest.approx(100 * unrouted / 40),
        )
        # Every expert takes exactly C tokens per batch: a perfectly even load.
        assert logger.values(f"{CV}/Exp{j:03d}/ec")[-1] == (2, pytest.approx(0.0, abs=1e-12))


def test_values_after_each_experience_and_hooks_only_during_evaluation(moe_run):
    model, metric, _, logger, _, hooks_in_training = moe_run
    # Evaluations after experience 0 (x = 1, 4 experts) and 1 (x = 2, 6 experts).
    assert [x for x, _ in logger.values(f"{DROPPED}/Exp001/tc")] == [1, 2]
    sizes = {(h["trained"], h["layer"]): h["tokens_per_expert"].numel() for h in metric.history}
    assert sizes == {(1, "tc"): 4, (1, "ec"): 4, (2, "tc"): 6, (2, "ec"): 6}
    assert all(0 <= h["dropped_token_pct"] <= 100 for h in metric.history)
    assert hooks_in_training == [0, 0]
    assert len(model.tc._routing_hooks) == len(model.ec._routing_hooks) == 0


def test_expert_usage_ignores_dropped_slots(moe_run):
    model, _, usage, _, inputs, _ = moe_run
    for j, batches in inputs["tc"].items():
        (entry,) = [
            h for h in usage.history if (h["trained"], h["experience"], h["layer"]) == (2, j, "tc")
        ]
        mass = sum(token_choice_oracle(model.tc, h)[2] for h in batches)
        np.testing.assert_allclose(entry["mass"].numpy(), mass, rtol=1e-5)


def test_only_layers_with_an_aux_loss_are_hooked():
    model = nn.ModuleDict(
        {
            "peer": PEER(8, num_experts=16, heads=1, topk=2),
            "moe": TokenChoiceMoE(8, num_experts=2, hidden=4),
        }
    )
    assert list(moe_layers(model)) == ["moe"]

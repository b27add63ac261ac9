"""ByteBigramSelector against a literal count and a hand-written interpolated bigram."""

import math
from collections import Counter

import pytest
import torch

from lifelong.models.byte_selector import ByteBigramSelector


def literal_score(
    text: list[int], t: int, unigram: Counter, bigram: Counter, weight: float, uniform: float
):
    """log((1-ε)·[λ·p(x_t | x_{t-1}) + (1-λ)·p(x_t)] + ε/256), add-½ unigram, bigram
    falling back to it; byte 0: log((1-ε)·p(x_0) + ε/256)."""
    total = sum(unigram.values())
    p1 = (unigram[text[t]] + 0.5) / (total + 0.5 * 256)
    if t == 0:
        return math.log((1 - uniform) * p1 + uniform / 256)
    context = sum(n for (a, _), n in bigram.items() if a == text[t - 1])
    p2 = bigram[text[t - 1], text[t]] / context if context else p1
    return math.log((1 - uniform) * (weight * p2 + (1 - weight) * p1) + uniform / 256)


@pytest.mark.parametrize("uniform", [0.0, 0.2])
def test_counts_and_scores_equal_a_literal_bigram(uniform):
    gen = torch.Generator().manual_seed(0)
    train = {e: torch.randint(40 * e, 40 * e + 60, (6, 20), generator=gen) for e in range(3)}
    sel = ByteBigramSelector(weight=0.4, uniform=uniform)
    for e, x in train.items():
        for part in (slice(0, 2), slice(2, 6)):  # in batches, as the statistics pass feeds it
            sel.update(e, torch.empty(0), x[part])
    unigrams = {e: Counter(x.flatten().tolist()) for e, x in train.items()}
    bigrams = {
        e: Counter((a, b) for row in x.tolist() for a, b in zip(row, row[1:], strict=False))
        for e, x in train.items()
    }
    for e in train:
        assert sel.unigram[e].tolist() == [unigrams[e][b] for b in range(256)]
        assert sel.bigram[e, 41, 42] == bigrams[e][41, 42]
    query = torch.randint(30, 110, (2, 12), generator=gen)
    scores = sel.scores(None, tokens=query)  # (2, 12, 3)
    for row in range(2):
        text = query[row].tolist()
        for t in range(12):
            for e in train:
                expected = literal_score(text, t, unigrams[e], bigrams[e], 0.4, uniform)
                assert scores[row, t, e].item() == pytest.approx(expected, rel=1e-5)


def test_unseen_experiences_score_minus_infinity_and_state_round_trips():
    sel = ByteBigramSelector()
    sel.update(1, torch.empty(0), torch.randint(0, 256, (2, 8)))
    assert sel.scores(None, tokens=torch.zeros(1, 3, dtype=torch.long))[0, 0, 0] == float("-inf")
    fresh = ByteBigramSelector()
    fresh.load_state_dict(sel.state_dict())
    assert torch.equal(fresh.bigram, sel.bigram) and fresh.nbytes() == sel.nbytes()


def test_a_byte_no_experience_saw_costs_at_most_the_uniform_level():
    # Experience 0 never saw a space: with add-½ alone the space after "5" costs
    # log((1 - λ)·½ / (N + 128)) (the pair never occurred either), below the cap; with
    # the uniform level no byte costs more than log(ε / 256).
    sel = ByteBigramSelector(uniform=0.2)
    sel.update(0, torch.empty(0), torch.tensor([list(b"1.5,2.25,3.0\n" * 400)]))
    sel.update(1, torch.empty(0), torch.tensor([list(b"we ran 5 tests on 12 files. " * 200)]))
    text = torch.tensor([list(b"1.5 2.25 3.0")])
    scores = sel.scores(None, tokens=text)[0]  # (T, 2)
    cap = math.log(0.2 / 256)
    assert scores.min() >= cap - 1e-4
    legacy = ByteBigramSelector(uniform=0.0)  # the same counts, add-½ only
    legacy.load_state_dict({k: v for k, v in sel.state_dict().items() if k != "uniform"})
    before = legacy.scores(None, tokens=text)[0]
    n = 13 * 400
    assert before[3, 0].item() == pytest.approx(math.log(0.5 * 0.5 / (n + 128)), rel=1e-5)
    assert before[3, 0] < cap - 1  # the space after "1.5": the level is what bounds it
    assert scores[3, 0] > before[3, 0] + 1


def test_a_checkpoint_from_before_the_uniform_level_scores_without_it():
    sel = ByteBigramSelector(uniform=0.0)
    sel.update(0, torch.empty(0), torch.randint(0, 256, (2, 8)))
    old = {k: v for k, v in sel.state_dict().items() if k != "uniform"}  # as 0.1 saved it
    loaded = ByteBigramSelector()  # the default ε
    loaded.load_state_dict(old)
    query = torch.randint(0, 256, (1, 6))
    assert float(loaded.uniform) == 0.0
    assert torch.equal(loaded.scores(None, tokens=query), sel.scores(None, tokens=query))


def test_it_needs_the_bytes():
    sel = ByteBigramSelector()
    with pytest.raises(ValueError, match="input bytes"):
        sel.update(0, torch.zeros(4, 8), None)
    with pytest.raises(ValueError, match="model.kind=transformer"):
        sel.scores(torch.zeros(2, 8))
    with pytest.raises(ValueError, match="weight=1.5"):
        ByteBigramSelector(weight=1.5)
    with pytest.raises(ValueError, match=r"uniform=1 must be a number in \[0, 1\)"):
        ByteBigramSelector(uniform=1)

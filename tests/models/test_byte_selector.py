"""ByteBigramSelector against a literal count and a hand-written interpolated bigram."""

import math
from collections import Counter

import pytest
import torch

from lifelong.models.byte_selector import ByteBigramSelector


def literal_score(text: list[int], t: int, unigram: Counter, bigram: Counter, weight: float):
    """log(λ·p(x_t | x_{t-1}) + (1-λ)·p(x_t)), add-½ unigram, bigram falling back to it."""
    total = sum(unigram.values())
    p1 = (unigram[text[t]] + 0.5) / (total + 0.5 * 256)
    if t == 0:
        return math.log(p1)
    context = sum(n for (a, _), n in bigram.items() if a == text[t - 1])
    p2 = bigram[text[t - 1], text[t]] / context if context else p1
    return math.log(weight * p2 + (1 - weight) * p1)


def test_counts_and_scores_equal_a_literal_bigram():
    gen = torch.Generator().manual_seed(0)
    train = {e: torch.randint(40 * e, 40 * e + 60, (6, 20), generator=gen) for e in range(3)}
    sel = ByteBigramSelector(weight=0.4)
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
                expected = literal_score(text, t, unigrams[e], bigrams[e], 0.4)
                assert scores[row, t, e].item() == pytest.approx(expected, rel=1e-5)


def test_unseen_experiences_score_minus_infinity_and_state_round_trips():
    sel = ByteBigramSelector()
    sel.update(1, torch.empty(0), torch.randint(0, 256, (2, 8)))
    assert sel.scores(None, tokens=torch.zeros(1, 3, dtype=torch.long))[0, 0, 0] == float("-inf")
    fresh = ByteBigramSelector()
    fresh.load_state_dict(sel.state_dict())
    assert torch.equal(fresh.bigram, sel.bigram) and fresh.nbytes() == sel.nbytes()


def test_it_needs_the_bytes():
    sel = ByteBigramSelector()
    with pytest.raises(ValueError, match="input bytes"):
        sel.update(0, torch.zeros(4, 8), None)
    with pytest.raises(ValueError, match="model.kind=transformer"):
        sel.scores(torch.zeros(2, 8))
    with pytest.raises(ValueError, match="weight=1.5"):
        ByteBigramSelector(weight=1.5)

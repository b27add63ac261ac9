"""ByteShapeSelector against literal n-gram counts and a hand-written interpolation."""

import math
from collections import Counter

import pytest
import torch

from lifelong.models.shape_selector import ByteShapeSelector


def shape(b: int) -> int:
    c = chr(b)
    if c.isascii() and c.isdigit():
        return ord("0")
    if "a" <= c <= "z":
        return ord("a")
    return ord("A") if "A" <= c <= "Z" else b


def literal_counts(rows: list[list[int]], order: int) -> Counter:
    """Counter of shape tuples: every k-gram (k = 1..order) inside each row, and under
    ("ctx", h) each k-gram context h followed by a byte in its row."""
    counts = Counter()
    for row in rows:
        s = [shape(b) for b in row]
        for k in range(1, order + 1):
            for t in range(k - 1, len(s)):
                counts[tuple(s[t - k + 1 : t + 1])] += 1
                if k > 1:
                    counts["ctx", tuple(s[t - k + 1 : t])] += 1
    return counts


def literal_score(text: list[int], t: int, counts: Counter, order, weight, uniform) -> float:
    """log((1-ε)·p^n + ε/256): p^1 add-½ over 256 values, p^k = λ·c(h s)/c(h) + (1-λ)·p^{k-1}
    where h (the k-1 shapes before t) was seen, else p^{k-1}; t < n - 1 stops at order t + 1."""
    s = [shape(b) for b in text]
    total = sum(n for key, n in counts.items() if isinstance(key, tuple) and len(key) == 1)
    p = (counts[(s[t],)] + 0.5) / (total + 0.5 * 256)
    for k in range(2, min(order, t + 1) + 1):
        h = tuple(s[t - k + 1 : t])
        if counts["ctx", h]:
            p = weight * counts[(*h, s[t])] / counts["ctx", h] + (1 - weight) * p
    return math.log((1 - uniform) * p + uniform / 256)


@pytest.mark.parametrize(("order", "uniform"), [(2, 0.0), (4, 0.2), (7, 0.2)])
def test_counts_and_scores_equal_a_literal_shape_ngram(order, uniform):
    gen = torch.Generator().manual_seed(order)
    # Bytes 40-130 hold digits, both cases of letters and punctuation around them.
    train = {e: torch.randint(40 + 10 * e, 100 + 10 * e, (6, 24), generator=gen) for e in range(3)}
    sel = ByteShapeSelector(order=order, weight=0.4, uniform=uniform)
    for e, x in train.items():
        for part in (slice(0, 2), slice(2, 6)):  # in batches, as the statistics pass feeds it
            sel.update(e, torch.empty(0), x[part])
    counts = {e: literal_counts(x.tolist(), order) for e, x in train.items()}
    for e in train:  # the stored sums are the literal counts
        unigram = {key[0]: n for key, n in counts[e].items() if len(key) == 1}
        assert sel.unigram[e].tolist() == [unigram.get(b, 0) for b in range(256)]
        lo, hi = sel.offsets[e], sel.offsets[e + 1]  # e's keys, sorted, and their counts
        keys, stored = sel.keys[lo:hi], sel.counts[lo:hi]
        longer = [n for key, n in counts[e].items() if key[0] == "ctx" or len(key) > 1]
        assert len(keys) == len(longer) and stored.sum() == sum(longer)
        assert torch.equal(keys, keys.unique()) and (stored > 0).all()
    query = torch.randint(30, 140, (2, 16), generator=gen)
    scores = sel.scores(None, tokens=query)  # (2, 16, 3)
    for row in range(2):
        text = query[row].tolist()
        for t in range(16):
            for e in train:
                expected = literal_score(text, t, counts[e], order, 0.4, uniform)
                assert scores[row, t, e].item() == pytest.approx(expected, rel=1e-5)


def test_texts_of_one_shape_score_alike_and_layouts_apart():
    sel = ByteShapeSelector(order=5)
    sel.update(0, torch.empty(0), torch.tensor([list(b"0.125,3.5,17.25\n" * 50)]))
    sel.update(1, torch.empty(0), torch.tensor([list(b"def read(path):\n    return x\n" * 30)]))
    # Figures and names no experience saw, in the layouts each one did.
    table = sel.scores(None, tokens=torch.tensor([list(b"9.875,4.5,62.75\n")]))[0]
    same = sel.scores(None, tokens=torch.tensor([list(b"1.625,8.5,30.75\n")]))[0]
    code = sel.scores(None, tokens=torch.tensor([list(b"def save(name):\n")]))[0]
    torch.testing.assert_close(table, same)  # one shape, one score
    assert table.sum(0).argmax() == 0 and code.sum(0).argmax() == 1


def test_unseen_experiences_score_minus_infinity_and_state_round_trips():
    sel = ByteShapeSelector(order=3)
    sel.update(2, torch.empty(0), torch.randint(0, 256, (2, 8)))
    sel.update(0, torch.empty(0), torch.randint(0, 256, (3, 8)))  # inserted before 2's keys
    query = torch.randint(0, 256, (2, 9))
    scores = sel.scores(None, tokens=query)
    assert (scores[..., 1] == float("-inf")).all() and scores[..., [0, 2]].isfinite().all()
    fresh = ByteShapeSelector(order=3)
    fresh.load_state_dict(sel.state_dict())
    assert fresh.nbytes() == sel.nbytes() > 0
    assert torch.equal(fresh.scores(None, tokens=query), scores)


def test_it_needs_the_bytes_and_a_supported_order():
    sel = ByteShapeSelector()
    with pytest.raises(ValueError, match="input bytes"):
        sel.update(0, torch.zeros(4, 8), None)
    with pytest.raises(ValueError, match="model.kind=transformer"):
        sel.scores(torch.zeros(2, 8))
    with pytest.raises(ValueError, match="order=8 is not supported"):
        ByteShapeSelector(order=8)
    with pytest.raises(ValueError, match=r"uniform=1 must be a number in \[0, 1\)"):
        ByteShapeSelector(uniform=1)

"""validation=True on the user's own streams: the test samples are never read, and each
experience's training samples split into a kept part that trains and a held-out part
scored in the test set's place, disjoint, stratified, and redrawn per seed."""

from collections import Counter

import pytest
import torch
from torch.utils.data import TensorDataset

from lifelong.data import DataError, build_stream


def experience(n_per_class: int, classes: list[int], offset: float):
    y = torch.tensor(classes).repeat(n_per_class)
    x = offset + torch.arange(len(y), dtype=torch.float32)[:, None].repeat(1, 3)  # rows unique
    return x, y


def rows(dataset) -> list[float]:
    return sorted(float(dataset[i][0][0]) for i in range(len(dataset)))


def labels(dataset) -> Counter:
    return Counter(int(dataset[i][1]) for i in range(len(dataset)))


TRAIN = [experience(10, [0, 1], 0.0), experience(10, [2, 3, 4], 1000.0)]


def split(kind: str, seed: int, **extra):
    if kind == "tensors":
        train = TRAIN
    else:
        train = [TensorDataset(x, y) for x, y in TRAIN]
    # The test split names a file that does not exist: it must never be opened.
    test = "/no/such/test.pt" if kind == "tensors" else [None, None]
    spec = build_stream(kind, train=train, test=test, validation=True, seed=seed, **extra)
    b = spec.benchmark
    return [(e.dataset, t.dataset) for e, t in zip(b.train_stream, b.test_stream, strict=True)]


@pytest.mark.parametrize("kind", ["tensors", "datasets"])
def test_held_out_samples_come_from_training_and_are_disjoint_and_stratified(kind):
    for (kept, held), (x, y) in zip(split(kind, seed=0), TRAIN, strict=True):
        assert set(rows(kept)).isdisjoint(rows(held))
        assert sorted(rows(kept) + rows(held)) == sorted(x[:, 0].tolist())
        assert len(held) == round(0.2 * len(y))
        # stratified: every class keeps its share (10 samples each: 2 held out)
        assert labels(held) == Counter({c: 2 for c in set(y.tolist())})


@pytest.mark.parametrize("kind", ["tensors", "datasets"])
def test_the_draw_follows_the_seed(kind):
    first, again, other = split(kind, 0), split(kind, 0), split(kind, 1)
    assert [rows(h) for _, h in first] == [rows(h) for _, h in again]
    assert [rows(h) for _, h in first] != [rows(h) for _, h in other]


def test_validation_fraction_and_too_few_samples():
    held = split("tensors", 0, validation_fraction=0.5)[0][1]
    assert len(held) == 10
    # Too few kept samples for every class on both sides: a plain draw, not an error.
    five = [(torch.randn(10, 3), torch.arange(10) % 5)]
    spec = build_stream("tensors", train=five, test=five, validation=True, validation_fraction=0.8)
    assert len(spec.benchmark.test_stream[0].dataset) == 8
    tiny = [(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))]
    with pytest.raises(DataError, match="too few to hold out"):
        build_stream("tensors", train=tiny, test=tiny, validation=True)
    with pytest.raises(DataError, match="validation_fraction"):
        build_stream("tensors", train=TRAIN, test=TRAIN, validation=True, validation_fraction=1.5)


def test_without_validation_the_test_split_is_scored():
    test = [experience(1, [0, 1], 5000.0), experience(1, [2, 3, 4], 6000.0)]
    spec = build_stream("tensors", train=TRAIN, test=test)
    assert rows(spec.benchmark.test_stream[0].dataset) == sorted(test[0][0][:, 0].tolist())

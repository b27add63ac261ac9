import time

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader

from lifelong.data import DataError, build_stream


def all_samples(experience):
    """(x, y, t) of the whole experience, stacked by the dataset's own collate."""
    return next(iter(DataLoader(experience.dataset, batch_size=len(experience.dataset))))


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


@pytest.mark.parametrize("scenario", ["class-il", "task-il"])
def test_split_digits_classes_and_task_labels_per_experience(scenario):
    spec = build_stream("split_digits", scenario=scenario, class_order=list(range(10)))
    assert (spec.task, spec.scenario, spec.input_shape, spec.num_classes) == (
        "classification",
        scenario,
        (64,),
        10,
    )
    assert spec.experience_names == [f"digits {2 * e}-{2 * e + 1}" for e in range(5)]
    streams = spec.benchmark.train_stream, spec.benchmark.test_stream
    assert len(streams[0]) == len(streams[1]) == 5
    for stream in streams:
        for e, exp in enumerate(stream):
            expected_t = e if scenario == "task-il" else 0
            assert set(exp.classes_in_this_experience) == {2 * e, 2 * e + 1}
            assert exp.task_label == expected_t and list(exp.task_labels) == [expected_t]
            x, y, t = all_samples(exp)
            assert x.shape[1:] == (64,) and x.dtype == torch.float32
            assert 0 <= x.min() and x.max() <= 1
            assert set(y.tolist()) == {2 * e, 2 * e + 1}
            assert set(t.tolist()) == {expected_t}


def test_split_digits_class_order_is_drawn_from_the_seed_or_given():
    orders = []
    for seed in (0, 1):
        spec = build_stream("split_digits", seed=seed)
        classes = [sorted(exp.classes_in_this_experience) for exp in spec.benchmark.train_stream]
        assert sorted(c for pair in classes for c in pair) == list(range(10))  # a partition
        assert classes == [sorted(e.classes_in_this_experience) for e in spec.benchmark.test_stream]
        orders.append(classes)
    assert orders[0] != orders[1]
    assert build_stream("split_digits", seed=0).experience_names[0] == "digits 1, 4"
    given = build_stream("split_digits", class_order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0], seed=3)
    assert given.experience_names[0] == "digits 8-9"
    with pytest.raises(DataError, match="class_order=.* must list each class 0-9 once"):
        build_stream("split_digits", class_order=[0, 0, 1, 2, 3, 4, 5, 6, 7, 8])


def test_split_digits_is_a_disjoint_stratified_split_of_all_digits():
    spec = build_stream("split_digits", test_fraction=0.2)
    train = [all_samples(e) for e in spec.benchmark.train_stream]
    test = [all_samples(e) for e in spec.benchmark.test_stream]
    train_rows = set().union(*(rows(x) for x, _, _ in train))
    test_rows = set().union(*(rows(x) for x, _, _ in test))
    assert not train_rows & test_rows
    assert len(train_rows) + len(test_rows) == len(load_digits().data)
    for (_, y_tr, _), (_, y_te, _) in zip(train, test, strict=True):
        for c in y_tr.unique():
            share = (y_te == c).sum() / ((y_te == c).sum() + (y_tr == c).sum())
            assert 0.15 < share < 0.25


@pytest.mark.parametrize("kind", ["split_digits", "permuted_digits"])
def test_the_validation_split_holds_out_training_images_and_never_reads_the_test_ones(kind):
    def images(spec, stream):
        return set().union(*(rows(all_samples(e)[0]) for e in getattr(spec.benchmark, stream)))

    # Experience 0 of permuted_digits is the identity: its pixels are the images themselves.
    first = {"permuted_digits": {"n_experiences": 1}}.get(kind, {})
    plain, held = build_stream(kind, **first), build_stream(kind, validation=True, **first)
    train, test = images(plain, "train_stream"), images(plain, "test_stream")
    val_train, val_test = images(held, "train_stream"), images(held, "test_stream")
    assert val_test <= train and not val_test & test  # held out of training, not the test
    assert val_train | val_test == train and not val_train & val_test
    assert 0.15 < len(val_test) / len(train) < 0.25  # test_fraction of the training images
    again = build_stream(kind, validation=True, seed=1, **first)
    assert images(again, "test_stream") != val_test  # each seed draws its own


def test_split_digits_is_fixed_by_seed():
    a, b, c = (build_stream("split_digits", seed=s) for s in (0, 0, 1))
    xa, xb, xc = (all_samples(s.benchmark.test_stream[0])[0] for s in (a, b, c))
    assert torch.equal(xa, xb)
    assert not torch.equal(xa, xc)


def test_split_digits_other_group_sizes_and_bad_options():
    spec = build_stream("split_digits", n_experiences=2, class_order=list(range(10)))
    assert spec.experience_names == ["digits 0-4", "digits 5-9"]
    with pytest.raises(DataError, match="n_experiences=3 equal groups; choose 1, 2, 5 or 10"):
        build_stream("split_digits", n_experiences=3)
    with pytest.raises(DataError, match="scenario='domain-il' is not supported; choose one of"):
        build_stream("split_digits", scenario="domain-il")
    with pytest.raises(
        DataError, match="test_fraction=1.5 must be a number strictly between 0 and 1"
    ):
        build_stream("split_digits", test_fraction=1.5)
    with pytest.raises(DataError, match="seed=-1 must be a non-negative integer"):
        build_stream("split_digits", seed=-1)


def test_permuted_digits_all_classes_and_a_real_fixed_permutation():
    spec = build_stream("permuted_digits", n_experiences=4)
    assert spec.scenario == "domain-il"
    assert spec.experience_names == ["identity", "permutation 1", "permutation 2", "permutation 3"]
    x0, y0, _ = all_samples(spec.benchmark.train_stream[0])
    for stream in (spec.benchmark.train_stream, spec.benchmark.test_stream):
        for exp in stream:
            assert set(exp.classes_in_this_experience) == set(range(10))
            assert exp.task_label == 0
    for e in range(1, 4):
        x, y, _ = all_samples(spec.benchmark.train_stream[e])
        assert torch.equal(y, y0)
        assert not torch.equal(x, x0)
        # The same pixels in another order: every row is a permutation of its original row.
        assert torch.equal(x.sort(dim=1).values, x0.sort(dim=1).values)
        # One permutation for the whole experience: applied to experience 0 it gives x.
        assert torch.equal(x0[:, pixel_permutation(spec, e)], x)


def pixel_permutation(spec, e: int) -> list[int]:
    """The column order of train experience e relative to experience 0 (the identity)."""
    x0 = all_samples(spec.benchmark.train_stream[0])[0]
    x = all_samples(spec.benchmark.train_stream[e])[0]
    return [int(np.flatnonzero((x0.T == col).all(dim=1).numpy())[0]) for col in x.T]


def test_permuted_digits_fixed_by_seed_and_no_leakage():
    a, b, c = (build_stream("permuted_digits", n_experiences=2, seed=s) for s in (0, 0, 7))
    perm = pixel_permutation(a, 1)
    assert perm != list(range(64))
    assert perm == pixel_permutation(b, 1)
    assert perm != pixel_permutation(c, 1)
    for spec in (a, c):
        for train, test in zip(
            spec.benchmark.train_stream, spec.benchmark.test_stream, strict=True
        ):
            assert not rows(all_samples(train)[0]) & rows(all_samples(test)[0])


def test_permuted_digits_task_labels_and_a_long_cheap_stream():
    start = time.perf_counter()
    spec = build_stream("permuted_digits", n_experiences=50, task_labels=True)
    assert time.perf_counter() - start < 5
    assert spec.scenario == "task-il"
    assert [e.task_label for e in spec.benchmark.test_stream] == list(range(50))
    assert len(spec.experience_names) == 50

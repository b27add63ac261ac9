"""Split Digits and Permuted Digits: scikit-learn's `load_digits()`, present on every machine.

The data are the 1,797 real 8x8 handwritten digits of the UCI "Optical Recognition of
Handwritten Digits" test set as shipped with scikit-learn (sklearn/datasets/data/digits.csv.gz),
gray levels 0-16 scaled to [0, 1], flattened to 64 features. Nothing is downloaded.
"""

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from .checks import fraction, non_negative_int, one_of, positive_int
from .errors import DataError
from .experiences import class_range_name, classification_dataset, make_benchmark
from .spec import StreamSpec

NUM_CLASSES = 10


def digits_split(test_fraction: float, seed: int, validation: bool = False):
    """Stratified, disjoint train/test split: (x_train, y_train, x_test, y_test), x: (N, 64).

    ``validation``: the test images are set aside unread and the training images are split
    again the same way, by a draw of their own; the held-out part is returned as the
    "test" split. Choosing hyper-parameters on it never reads the test images."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # (1797, 64) in [0, 1]
    y = digits.target.astype(np.int64)  # (1797,) in 0..9
    # Identical images in both splits would leak; drop repeats (none in the current release).
    _, first = np.unique(x, axis=0, return_index=True)
    keep = np.sort(first)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x[keep], y[keep], test_size=test_fraction, stratify=y[keep], random_state=seed
    )
    if validation:
        draw = np.random.RandomState([seed, 1])  # not the test split's draw
        x_tr, x_te, y_tr, y_te = train_test_split(
            x_tr, y_tr, test_size=test_fraction, stratify=y_tr, random_state=draw
        )
    return (torch.from_numpy(a) for a in (x_tr, y_tr, x_te, y_te))


def split_digits(
    *,
    scenario: str = "class-il",
    n_experiences: int = 5,
    test_fraction: float = 0.2,
    seed: int = 0,
    class_order: Sequence[int] | None = None,
    validation: bool = False,
) -> StreamSpec:
    """Experience e holds the classes ``class_order[e·k : (e+1)·k]`` (k = 10 / n_experiences),
    original labels 0-9 kept. ``class_order`` defaults to a permutation drawn from ``seed``
    (as Avalanche's class-incremental benchmarks do), so seeds vary the class split too;
    pass ``list(range(10))`` for the classic (0,1), (2,3), ...

    class-il: task label 0 everywhere; task-il: task label = experience index.
    ``validation``: test experiences from held-out training images (``digits_split``).
    """
    one_of("scenario", scenario, ("class-il", "task-il"))
    positive_int("n_experiences", n_experiences)
    if NUM_CLASSES % n_experiences:
        raise DataError(
            f"split_digits cannot split 10 classes into n_experiences={n_experiences} equal "
            "groups; choose 1, 2, 5 or 10"
        )
    x_tr, y_tr, x_te, y_te = digits_split(
        fraction("test_fraction", test_fraction), non_negative_int("seed", seed), validation
    )
    order = _class_order(class_order, seed)  # (10,)
    per = NUM_CLASSES // n_experiences
    train, test, names = [], [], []
    for e in range(n_experiences):
        classes = order[e * per : (e + 1) * per].sort().values
        t = e if scenario == "task-il" else 0
        on_tr, on_te = torch.isin(y_tr, classes), torch.isin(y_te, classes)
        train.append(classification_dataset(x_tr[on_tr], y_tr[on_tr], t))
        test.append(classification_dataset(x_te[on_te], y_te[on_te], t))
        names.append(class_range_name("digits", classes.tolist()))
    return StreamSpec(
        benchmark=make_benchmark(train, test, classification=True),
        task="classification",
        scenario=scenario,
        input_shape=(64,),
        num_classes=NUM_CLASSES,
        experience_names=names,
    )


def _class_order(class_order, seed: int) -> torch.Tensor:
    """The given order of the 10 classes, checked, or one drawn from ``seed``."""
    if class_order is None:
        rng = np.random.default_rng([seed, 10])  # its own stream: the split uses seed alone
        return torch.from_numpy(rng.permutation(NUM_CLASSES))
    order = list(class_order)
    if sorted(order) != list(range(NUM_CLASSES)):
        raise DataError(
            f"class_order={class_order!r} must list each class 0-9 once, e.g. "
            f"class_order=[0,1,2,3,4,5,6,7,8,9]"
        )
    return torch.tensor(order)


def permuted_digits(
    *,
    n_experiences: int = 5,
    seed: int = 0,
    task_labels: bool = False,
    test_fraction: float = 0.2,
    validation: bool = False,
) -> StreamSpec:
    """All 10 classes per experience; experience 0 as is, every other one under its own fixed
    random pixel permutation (drawn from `seed`), applied to the same train/test split.

    Without task labels this is domain-IL; task_labels=True gives experience e task label e,
    i.e. task-IL (the task is known at test time). ``validation``: test experiences from
    held-out training images (``digits_split``).
    """
    positive_int("n_experiences", n_experiences)
    x_tr, y_tr, x_te, y_te = digits_split(
        fraction("test_fraction", test_fraction), non_negative_int("seed", seed), validation
    )
    rng = np.random.default_rng(seed)
    train, test, names = [], [], []
    for e in range(n_experiences):
        perm = torch.arange(64) if e == 0 else torch.from_numpy(rng.permutation(64))
        t = e if task_labels else 0
        train.append(classification_dataset(x_tr[:, perm], y_tr, t))
        test.append(classification_dataset(x_te[:, perm], y_te, t))
        names.append("identity" if e == 0 else f"permutation {e}")
    return StreamSpec(
        benchmark=make_benchmark(train, test, classification=True),
        task="classification",
        scenario="task-il" if task_labels else "domain-il",
        input_shape=(64,),
        num_classes=NUM_CLASSES,
        experience_names=names,
    )

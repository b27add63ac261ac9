"""Streams from the user's own data in Python: tensors or torch datasets, one per experience.

From a config, `tensors` reads each split from a file written by
``torch.save([(x0, y0), (x1, y1), ...], "train.pt")``: ``stream: {kind: tensors,
train: train.pt, test: test.pt}``. Both take ``validation=True``: the test samples are set
aside unread and ``validation_fraction`` of each experience's training samples, drawn by
``seed`` (the run's seed in a config), is scored in their place (``holdout.held_out``).
"""

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from avalanche.benchmarks.utils import _make_taskaware_classification_dataset

from .checks import one_of, task_label_list
from .errors import DataError
from .experiences import class_range_name, classification_dataset, make_benchmark
from .holdout import held_out
from .spec import StreamSpec

SCENARIOS = ("class-il", "task-il", "domain-il")


def _check_counts(train, test) -> int:
    for name, value in (("train", train), ("test", test)):
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise DataError(f"{name} must be a list with one entry per experience, got {value!r}")
    if not train:
        raise DataError("train is empty; pass one entry per experience")
    if len(train) != len(test):
        raise DataError(
            f"train has {len(train)} experiences but test has {len(test)}; "
            "pass one test entry per train entry"
        )
    return len(train)


def _load_pairs(value, name: str):
    """The (x, y) pairs of one split: as given, or read from the file a path names."""
    if not isinstance(value, str | os.PathLike):
        return value
    path = Path(value).expanduser()
    if not path.exists():
        raise DataError(
            f"data path '{value}' for {name} does not exist; pass an existing file written "
            f"by torch.save([(x, y), ...], path), one pair per experience"
        )
    try:
        # weights_only: tensors and plain containers only, no pickled code from the file.
        return torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch.load fails in many types
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"{name} file '{value}' cannot be read as tensors ({reason}); write it with "
            f"torch.save([(x, y), ...], path)"
        ) from None


def _as_xy(pair, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x: (N, *shape), y: (N,) int64) from one user pair, or a DataError naming `where`."""
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise DataError(f"{where} must be an (x, y) pair of tensors, got {type(pair).__name__}")
    x, y = torch.as_tensor(pair[0]), torch.as_tensor(pair[1])
    if len(x) == 0:
        raise DataError(f"{where} has no samples; give every experience at least one sample")
    if y.ndim != 1 or len(y) != len(x) or y.is_floating_point() or y.is_complex():
        raise DataError(
            f"{where} needs y as {len(x)} integer class ids (shape ({len(x)},)) to match x, "
            f"got y of shape {tuple(y.shape)} and dtype {y.dtype}"
        )
    if y.min() < 0:
        raise DataError(f"{where} has negative class ids; use ids 0, 1, 2, ...")
    return (x.float() if not x.is_floating_point() else x), y.long()


def _spec(train, test, classes, input_shape, scenario, names) -> StreamSpec:
    num_classes = max(max(c) for c in classes) + 1
    samples = sum(len(d) for d in [*train, *test])
    if num_classes > samples:
        # The heads get one output per id up to the largest: an id of 10**9 would build a
        # head of 10**9 classes. Ids that sparse cannot be meant as they are.
        raise DataError(
            f"class ids go up to {num_classes - 1} but the stream has only {samples} samples; "
            "number the classes 0, 1, 2, ... (e.g. torch.unique(y, return_inverse=True)[1])"
        )
    return StreamSpec(
        benchmark=make_benchmark(train, test, classification=True),
        task="classification",
        scenario=scenario,
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        experience_names=names,
    )


def tensors(
    *,
    train: Sequence[tuple[torch.Tensor, torch.Tensor]] | str | os.PathLike,
    test: Sequence[tuple[torch.Tensor, torch.Tensor]] | str | os.PathLike,
    task_labels: Sequence[int] | None = None,
    scenario: str = "class-il",
    validation: bool = False,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> StreamSpec:
    """One (x, y) pair per experience, x: (N, *input_shape), y: (N,) class ids.

    train, test: the pairs, or the path of a file holding them (``torch.save``).
    task_labels: one per experience; by default the experience index for task-il, else 0.
    validation: score held-out training samples instead of the test pairs (module doc).
    """
    one_of("scenario", scenario, SCENARIOS)
    train = _load_pairs(train, "train")
    test = train if validation else _load_pairs(test, "test")  # set aside unread
    n = _check_counts(train, test)
    labels = task_label_list(task_labels, n, scenario)
    train_ds, test_ds, classes, names, input_shape = [], [], [], [], None
    for e in range(n):
        x_tr, y_tr = _as_xy(train[e], f"train experience {e}")
        if validation:
            where = f"train experience {e}"
            kept, held = held_out(y_tr, share=validation_fraction, seed=seed + e, where=where)
            x_tr, y_tr, x_te, y_te = x_tr[kept], y_tr[kept], x_tr[held], y_tr[held]
        else:
            x_te, y_te = _as_xy(test[e], f"test experience {e}")
        for x, split in ((x_tr, "train"), (x_te, "test")):
            input_shape = x.shape[1:] if input_shape is None else input_shape
            if x.shape[1:] != input_shape:
                raise DataError(
                    f"{split} experience {e} has samples of shape {tuple(x.shape[1:])}, "
                    f"others {tuple(input_shape)}; give every sample the same shape"
                )
        train_ds.append(classification_dataset(x_tr, y_tr, labels[e]))
        test_ds.append(classification_dataset(x_te, y_te, labels[e]))
        classes.append(sorted(set(y_tr.tolist()) | set(y_te.tolist())))
        names.append(class_range_name("classes", y_tr.tolist()))
    return _spec(train_ds, test_ds, classes, input_shape, scenario, names)


def _targets(dataset, where: str) -> tuple[list[int], tuple[int, ...]]:
    """(every sample's class id, the shape of a sample's x) of a torch dataset of (x, y)
    samples, checked."""
    try:
        n = len(dataset)
    except TypeError:
        raise DataError(f"{where} must be a map-style torch Dataset with a length") from None
    if n == 0:
        raise DataError(f"{where} has no samples; give every experience at least one sample")
    first = dataset[0]
    if not isinstance(first, tuple | list) or len(first) < 2:
        raise DataError(f"{where} must yield (x, y) samples, got {type(first).__name__}")
    # Avalanche keeps every sample's class (for classes_in_this_experience): read it from
    # `targets` when the dataset has one (torchvision datasets do), else from each sample.
    targets = getattr(dataset, "targets", None)
    if targets is None or len(targets) != n:
        targets = [dataset[i][1] for i in range(n)]
    targets = [int(t) for t in targets]
    if min(targets) < 0:
        raise DataError(f"{where} has negative class ids; use ids 0, 1, 2, ...")
    return targets, tuple(torch.as_tensor(first[0]).shape)


def _wrap_dataset(dataset, where: str, task_label: int):
    """An Avalanche classification dataset over a torch dataset of (x, y) samples."""
    targets, shape = _targets(dataset, where)
    wrapped = _make_taskaware_classification_dataset(
        dataset, targets=targets, task_labels=task_label
    )
    return wrapped, shape, targets


def _validation_split(train, share: float, seed: int) -> tuple[list, list]:
    """(kept, held out) Subsets of every experience's training dataset."""
    kept, held = [], []
    for e, dataset in enumerate(train):
        where = f"train experience {e}"
        targets, _ = _targets(dataset, where)
        keep, hold = held_out(targets, share=share, seed=seed + e, where=where)
        kept.append(torch.utils.data.Subset(dataset, keep))
        held.append(torch.utils.data.Subset(dataset, hold))
    return kept, held


def datasets(
    *,
    train: Sequence[torch.utils.data.Dataset],
    test: Sequence[torch.utils.data.Dataset],
    task_labels: Sequence[int] | None = None,
    scenario: str = "class-il",
    validation: bool = False,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> StreamSpec:
    """One torch Dataset of (x, y) samples per experience (y an integer class id).
    validation: score held-out training samples instead of the test datasets (module doc).
    """
    one_of("scenario", scenario, SCENARIOS)
    n = _check_counts(train, test)
    labels = task_label_list(task_labels, n, scenario)
    if validation:  # the test datasets are set aside unread
        train, test = _validation_split(train, validation_fraction, seed)
    train_ds, test_ds, classes, names, input_shape = [], [], [], [], None
    for e in range(n):
        for split, source, out in (("train", train, train_ds), ("test", test, test_ds)):
            wrapped, shape, targets = _wrap_dataset(source[e], f"{split} experience {e}", labels[e])
            input_shape = shape if input_shape is None else input_shape
            if shape != input_shape:
                raise DataError(
                    f"{split} experience {e} has samples of shape {shape}, others "
                    f"{input_shape}; give every sample the same shape"
                )
            out.append(wrapped)
            if split == "train":
                classes.append(sorted(set(targets)))
                names.append(class_range_name("classes", targets))
            else:
                classes[-1] = sorted(set(classes[-1]) | set(targets))
    return _spec(train_ds, test_ds, classes, input_shape, scenario, names)

"""Validation of builder options, each failure a DataError naming the option and the fix."""

from collections.abc import Sequence

from .errors import DataError


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}; pass e.g. {name}=8")
    return value


def seed_int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"seed must be a non-negative integer, got {value!r}; pass e.g. seed=0")
    return value


def fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise DataError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def one_of(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise DataError(f"{name}={value!r} is not supported; choose one of {valid}")
    return value


def task_label_list(task_labels, n_experiences: int, scenario: str) -> list[int]:
    """Task label per experience: given explicitly, or the index for task-IL and 0 otherwise."""
    if task_labels is None:
        return list(range(n_experiences)) if scenario == "task-il" else [0] * n_experiences
    labels = list(task_labels)
    if len(labels) != n_experiences or not all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in labels
    ):
        raise DataError(
            f"task_labels must be {n_experiences} non-negative integers, one per experience, "
            f"got {task_labels!r}"
        )
    return labels

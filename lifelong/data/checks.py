"""The shared argument checks (``lifelong.checks``), raising ``DataError`` for stream options,
and the one check that only streams need."""

from functools import partial

from .. import checks
from .errors import DataError

positive_int = partial(checks.positive_int, error=DataError)
non_negative_int = partial(checks.non_negative_int, error=DataError)
fraction = partial(checks.fraction, error=DataError)
one_of = partial(checks.one_of, error=DataError)


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

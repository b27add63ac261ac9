"""A validation split carved out of one experience's training samples.

Choosing a setting on the test samples makes the test figure a fit to them. A stream
built with ``validation=True`` sets its test samples aside unread and holds out part of
each experience's training samples instead, by a draw of its own: what is left trains,
what is held out is scored as that experience's "test" set.
"""

import math

import numpy as np
from sklearn.model_selection import train_test_split

from ..checks import fraction
from .errors import DataError


def held_out(targets, *, share: float, seed: int, where: str) -> tuple[list[int], list[int]]:
    """(kept, held out) sample indices of one experience's training set: ``share`` of
    them held out (rounded up), stratified by class where every class has two samples or
    more (else a plain random draw), drawn from ``seed`` alone."""
    share = fraction("validation_fraction", share, error=DataError)
    targets = np.asarray(targets)
    n = len(targets)
    size = math.ceil(share * n)  # as scikit-learn rounds a fractional test size
    if size >= n:
        raise DataError(
            f"{where} has {n} training samples, too few to hold out {share:.0%} of them for "
            "validation and still train; give it more samples or change validation_fraction"
        )
    _, counts = np.unique(targets, return_counts=True)
    # A stratified draw needs two samples of every class and a class's room on both sides.
    stratify = targets if counts.min() >= 2 and min(size, n - size) >= len(counts) else None
    kept, held = train_test_split(
        np.arange(n), test_size=size, stratify=stratify, random_state=np.random.RandomState(seed)
    )
    return sorted(kept.tolist()), sorted(held.tolist())

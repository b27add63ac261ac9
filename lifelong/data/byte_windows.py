"""Fixed byte windows for language modelling, sampled from held-apart train and test regions.

A domain is a list of documents (files). Documents go whole to training or to testing,
drawn with the seed, so a held-out file never feeds training; the domain's bytes are laid out
as the training documents, then the test documents, and windows may span documents within
one side but never the boundary between them. A domain of a single document cannot be split
by file: it is cut into k equal blocks instead, the last `test_fraction` of every block being
the test region, so the held-out bytes are spread over the whole text.
"""

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

BYTE_VOCAB = 256  # a byte-level language model predicts one of 256 byte values

# At most this many blocks per single-document domain: spreads the held-out bytes.
MAX_BLOCKS = 64
# Each block's test region holds at least this many windows' worth of bytes (fewer blocks
# for small domains), so few window starts are lost at region ends.
MIN_WINDOWS_PER_TEST_REGION = 4
# A document that would take the held-out share past this multiple of test_fraction stays in
# training: one large file (a generated table) would otherwise make up most of the test side.
MAX_TEST_OVERSHOOT = 2


class ByteWindows(Dataset):
    """Sample i is (x, y) = (w[:-1], w[1:]) with w = data[starts[i] : starts[i] + seq_len + 1]."""

    def __init__(self, data: torch.Tensor, starts: torch.Tensor, seq_len: int):
        self.data = data  # (n_bytes,) uint8, shared by the train and test windows of a domain
        self.starts = starts  # (n_windows,) int64
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = int(self.starts[i])
        w = self.data[s : s + self.seq_len + 1].long()  # (seq_len + 1,)
        return w[:-1], w[1:]  # (seq_len,), (seq_len,)


@dataclass(frozen=True)
class HeldOut:
    """A domain's bytes and its disjoint train and test regions [(start, end), ...]."""

    data: bytes  # (n_bytes,): the training documents, then the test documents
    train: list[tuple[int, int]]
    test: list[tuple[int, int]]
    # Document names per side, in layout order; a single document is named on both sides.
    train_documents: tuple[str, ...]
    test_documents: tuple[str, ...]


def hold_out(documents: Sequence[tuple[str, bytes]], window: int, test_fraction: float, rng):
    """HeldOut by document, or by region for a single document (None if its regions cannot
    hold a window of `window` bytes each). A side of small documents may hold no window."""
    if len(documents) == 1:
        name, data = documents[0]
        regions = split_regions(len(data), window, test_fraction)
        return None if regions is None else HeldOut(data, *regions, (name,), (name,))
    is_test = assign_documents([len(d) for _, d in documents], test_fraction, rng)
    train = [documents[i] for i in np.flatnonzero(~is_test)]
    test = [documents[i] for i in np.flatnonzero(is_test)]
    cut = sum(len(d) for _, d in train)
    data = b"".join(d for _, d in train + test)
    names = (tuple(n for n, _ in train), tuple(n for n, _ in test))
    return HeldOut(data, [(0, cut)], [(cut, len(data))], *names)


def training_side(held: HeldOut, documents: Sequence[tuple[str, bytes]]):
    """The documents on ``held``'s training side, in their order; for a single document,
    its training regions joined into one."""
    if len(documents) == 1:
        return [(documents[0][0], b"".join(held.data[a:b] for a, b in held.train))]
    keep = set(held.train_documents)
    return [d for d in documents if d[0] in keep]


def assign_documents(sizes: Sequence[int], test_fraction: float, rng) -> np.ndarray:
    """(n_documents,) bool, True = test: documents in a random order join the test side until
    it holds test_fraction of the bytes; at least one document on each side (n >= 2)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    target = test_fraction * sizes.sum()
    is_test = np.zeros(len(sizes), dtype=bool)
    held, taken = 0, 0
    for i in rng.permutation(len(sizes)):
        if held >= target or taken == len(sizes) - 1:
            break
        if held + sizes[i] <= MAX_TEST_OVERSHOOT * target:
            is_test[i] = True
            held, taken = held + sizes[i], taken + 1
    if not is_test.any():  # every document is larger than the overshoot allows
        is_test[np.argmin(sizes)] = True
    return is_test


def split_regions(n_bytes: int, window: int, test_fraction: float):
    """Train and test regions [(start, end), ...] of a domain of n_bytes; None if too small."""
    k = int(n_bytes * test_fraction // (MIN_WINDOWS_PER_TEST_REGION * window))
    k = min(max(k, 1), MAX_BLOCKS)
    train, test = [], []
    for i in range(k):
        a, b = round(i * n_bytes / k), round((i + 1) * n_bytes / k)
        cut = b - round((b - a) * test_fraction)
        train.append((a, cut))
        test.append((cut, b))
    if any(end - start < window for start, end in train + test):
        return None
    return train, test


def window_positions(regions, window: int) -> np.ndarray:
    """(n,) int64: the start of every window that lies inside one of the regions."""
    return np.concatenate([np.arange(a, b - window + 1, dtype=np.int64) for a, b in regions])


def sample_starts(
    regions, window: int, n: int, rng: np.random.Generator, keep: np.ndarray | None = None
) -> torch.Tensor:
    """n window starts drawn uniformly (with replacement) among all windows inside the
    regions; given keep ((n_bytes,) bool, True at at least one start inside the regions),
    drawn starts where keep is False are rejected and drawing goes on until n are kept."""
    lo = np.array([a for a, _ in regions], dtype=np.int64)
    counts = np.array([b - a - window + 1 for a, b in regions], dtype=np.int64)
    ends = np.cumsum(counts)  # window j of all regions lies in the region where j < ends
    kept, found = [], 0
    rate = 1.0 if keep is None else keep[window_positions(regions, window)].mean()
    if rate == 0:
        raise ValueError("keep is False at every window start inside the regions")
    while found < n:
        # Enough draws that one round usually suffices at the observed acceptance rate.
        m = n if keep is None else int((n - found) / rate) + 16
        j = rng.integers(0, ends[-1], size=m)
        r = np.searchsorted(ends, j, side="right")
        starts = lo[r] + j - (ends[r] - counts[r])
        if keep is not None:
            starts = starts[keep[starts]][: n - found]
        kept.append(starts)
        found += len(starts)
    return torch.from_numpy(np.concatenate(kept))  # (n,) int64


def domain_rng(seed: int, name: str, split: str) -> np.random.Generator:
    """A generator fixed by (seed, domain name, split): adding a domain leaves others unchanged."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(split.encode())])

"""Fixed byte windows for language modelling, sampled from held-apart train and test regions.

A domain's bytes are cut into k equal blocks; the last `test_fraction` of every block is the
test region, the rest the train region. Windows never cross a region's end, so no test window
shares a byte offset with a train window, and the test regions are spread over the whole
domain (not just its last file).
"""

import zlib

import numpy as np
import torch
from torch.utils.data import Dataset

BYTE_VOCAB = 256  # a byte-level language model predicts one of 256 byte values

# At most this many blocks per domain: enough to spread the held-out bytes over all files.
MAX_BLOCKS = 64
# Each block's test region holds at least this many windows' worth of bytes (fewer blocks
# for small domains), so few window starts are lost at region ends.
MIN_WINDOWS_PER_TEST_REGION = 4


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


def sample_starts(regions, window: int, n: int, rng: np.random.Generator) -> torch.Tensor:
    """n window starts drawn uniformly (with replacement) among all windows inside the regions."""
    lo = np.array([a for a, _ in regions], dtype=np.int64)
    counts = np.array([b - a - window + 1 for a, b in regions], dtype=np.int64)
    ends = np.cumsum(counts)  # window j of all regions lies in the region where j < ends
    j = rng.integers(0, ends[-1], size=n)
    r = np.searchsorted(ends, j, side="right")
    return torch.from_numpy(lo[r] + j - (ends[r] - counts[r]))  # (n,) int64


def domain_rng(seed: int, name: str, split: str) -> np.random.Generator:
    """A generator fixed by (seed, domain name, split): adding a domain leaves others unchanged."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(split.encode())])

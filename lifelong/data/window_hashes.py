"""Test windows whose bytes never occur in the training text, found by hashing every window.

Held-out files still repeat training text (license headers, docstrings, generated tables), so
a test window may equal a training window byte for byte. Each window of w bytes at s gets the
polynomial hash h(s) = sum_k data[s + k] * P^(w - 1 - k) mod 2^64, computed for every s at once
in numpy's uint64 arithmetic (which wraps mod 2^64): P is odd, so Q = P^-1 mod 2^64 exists, and
with G[i] = sum_{j < i} data[j] * Q^j, h(s) = (G[s + w] - G[s]) * P^(s + w - 1).

Equal windows have equal hashes, so a test window whose hash is no training window's hash
cannot occur in the training text; a collision can only reject a clean window.
"""

import numpy as np

from .byte_windows import window_positions

P = 0x9E3779B97F4A7C15  # odd (invertible mod 2^64), with its bits spread over the word
Q = pow(P, -1, 2**64)
POWER_BLOCK = 1024
# Bits of the filter table in `_occurs_in`: about 16 slots per needle (few false matches),
# at most 16 MB.
MIN_TABLE_BITS, MAX_TABLE_BITS, SLOTS_PER_NEEDLE_BITS = 10, 24, 4


def powers(base: int, n: int) -> np.ndarray:
    """(n,) uint64: base**0 ... base**(n - 1) mod 2^64, as an outer product of two short
    runs (numpy's cumprod over n is much slower)."""
    small, x = [], 1
    for _ in range(POWER_BLOCK):
        small.append(x)
        x = x * base % 2**64
    big, y = [], 1  # x is now base**POWER_BLOCK
    for _ in range(-(-n // POWER_BLOCK)):
        big.append(y)
        y = y * x % 2**64
    outer = np.multiply.outer(np.array(big, np.uint64), np.array(small, np.uint64))
    return outer.ravel()[:n]


def window_hashes(data: np.ndarray, window: int) -> np.ndarray:
    """(n_bytes - window + 1,) uint64: the hash of data[s : s + window] for every start s."""
    n = len(data)
    prefix = np.zeros(n + 1, dtype=np.uint64)  # G above
    np.cumsum(data.astype(np.uint64) * powers(Q, n), out=prefix[1:])
    return (prefix[window:] - prefix[:-window]) * powers(P, n)[window - 1 :]


def _occurs_in(needles: np.ndarray, haystack: np.ndarray) -> np.ndarray:
    """(len(needles),) bool: which needles occur in haystack (both uint64). A table over the
    hashes' top bits narrows the haystack (millions of training hashes) to the values that
    may equal a needle, and the needles to those that may equal one of these, so only the
    few left are compared exactly (sorting millions of uint64 would cost 10x more)."""
    bits = int(np.ceil(np.log2(len(needles) + 1))) + SLOTS_PER_NEEDLE_BITS
    shift = np.uint64(64 - min(max(bits, MIN_TABLE_BITS), MAX_TABLE_BITS))
    table = np.zeros(1 << (64 - int(shift)), dtype=bool)
    table[needles >> shift] = True
    maybe = haystack[table[haystack >> shift]]
    table[:] = False
    table[maybe >> shift] = True
    candidates = table[needles >> shift]
    found = np.zeros(len(needles), dtype=bool)
    found[candidates] = np.isin(needles[candidates], maybe)
    return found


def unseen_test_starts(data: bytes, train, test, window: int) -> np.ndarray:
    """(n_bytes,) bool: True at the start of every window inside the test regions whose bytes
    occur in no window inside the train regions (regions: [(start, end), ...])."""
    hashes = window_hashes(np.frombuffer(data, dtype=np.uint8), window)
    starts = window_positions(test, window)
    seen = _occurs_in(hashes[starts], hashes[window_positions(train, window)])
    keep = np.zeros(len(data), dtype=bool)
    keep[starts[~seen]] = True
    return keep

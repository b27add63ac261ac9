"""``ByteShapeSelector``: which experience a byte comes from, by a long n-gram over the
*shapes* of the bytes (a causal naive-Bayes identifier that generalises across files).

The byte bigram (``byte_selector``) reads one byte of context. Longer byte contexts
identify text better on the files the counts came from, but a held-out file writes its
own names and numbers, whose long byte n-grams no experience has seen. Mapping every
digit to ``0``, every lower-case letter to ``a`` and every upper-case one to ``A``
(punctuation, spaces and other bytes stay themselves) keeps what tells code, prose and
tables apart, the layout (``aaa_aaa(aaa)``, ``  * aaa``, ``0.000,0.00``), and drops the
particular words and figures. This is the "word shape" of named-entity recognisers
(Collins 2002; Finkel et al. 2005) applied to a character language identifier (Dunning,
"Statistical Identification of Language", 1994, at order n - 1).

Per experience e, byte t scores

    log((1 - ε)·p_e^n(s_t | s_{t-n+1} .. s_{t-1}) + ε / 256),  s = shape(x),

with p_e^1(s) add-½ smoothed over the 256 byte values and, for k = 2..n, the
Jelinek-Mercer interpolation p^k = λ·c(h s) / c(h) + (1 - λ)·p^{k-1}, falling back to
p^{k-1} where the (k-1)-shape context h was never seen in e: the byte bigram's recipe
carried to order n (Chen & Goodman 1999, §2.3), the uniform level bounding what text
unlike any experience costs. Bytes t < n - 1 use the longest context they have.

Memory: exact sparse counts, a key and a count (16 bytes) per distinct shape k-gram and
k-gram context each experience saw, k = 2..n, plus 256 unigram counts per experience.
Scoring looks a byte's n-gram up in a table of the interpolations of every top-order
n-gram training saw, and interpolates only the others.
"""

import torch
from torch import Tensor, nn

from ..checks import fraction, one_of, unit_interval
from ..data.byte_windows import BYTE_VOCAB
from .last_call import LastCall

ORDERS = tuple(range(2, 8))  # base-256 codes of n <= 7 shapes, a sentinel and a flag fit int64
_NO_SHAPE = ord("1")  # digits become "0": no text has this shape


def shapes() -> Tensor:
    """(256,) the shape of each byte value: digits -> '0', a-z -> 'a', A-Z -> 'A'."""
    table = torch.arange(BYTE_VOCAB)
    for first, last in ("09", "az", "AZ"):
        table[ord(first) : ord(last) + 1] = ord(first)
    return table


def gram_keys(s: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """(B, T) shapes -> the keys of the n-grams ending at t >= n - 1 and of their (n-1)-gram
    contexts, both (B, T - n + 1). A leading 256**n tells orders apart; the low bit tells an
    n-gram (0) from a context (1)."""
    code = sum(s[:, n - 1 - k : s.shape[1] - k] * BYTE_VOCAB**k for k in range(n))
    full = (BYTE_VOCAB**n + code) * 2
    context = (BYTE_VOCAB ** (n - 1) + code // BYTE_VOCAB) * 2 + 1
    return full, context


class ByteShapeSelector(nn.Module):
    """Reads only the input bytes, so a model's growing layers share one (``shared_by_layers``).

    Args:
    order: n, the longest shape n-gram, 2 to 7.
    weight: λ, each order's share of the interpolation over the order below, 0 < λ < 1.
    uniform: ε, the uniform distribution's share, 0 <= ε < 1.
    The order was chosen on held-out training files (docs/task_inference.md, "Byte
    shapes"); λ and ε are the byte bigram's, not tuned again.
    """

    shared_by_layers = True

    def __init__(self, *, order: int = 7, weight: float = 0.5, uniform: float = 0.2):
        super().__init__()
        self.order = one_of("order", order, ORDERS)
        self.weight = fraction("weight", weight)
        self.uniform = unit_interval("uniform", uniform)
        self.register_buffer("shape", shapes(), persistent=False)
        self.register_buffer("unigram", torch.zeros(0, BYTE_VOCAB, dtype=torch.float64))  # (E, V)
        # Experience e's sorted keys and their counts: keys[offsets[e]:offsets[e + 1]].
        self.register_buffer("keys", torch.zeros(0, dtype=torch.int64))  # (M,)
        self.register_buffer("counts", torch.zeros(0, dtype=torch.float64))  # (M,)
        self.register_buffer("offsets", torch.zeros(1, dtype=torch.int64))  # (E + 1,)
        self._cache: dict[str, Tensor] = {}  # scoring tables, derived once per change
        self._last = LastCall()  # every layer sharing this selector asks for the same bytes

    @torch.no_grad()
    def update(self, experience: int, x: Tensor, labels: Tensor | None = None) -> None:
        """Add an experience's windows: ``labels`` (B, T), the input bytes (``x``, the layer
        input, is not used)."""
        if labels is None or labels.dim() != 2:
            raise ValueError("ByteShapeSelector.update needs the input bytes (B, T) as labels")
        grow = experience + 1 - self.unigram.shape[0]
        if grow > 0:  # a row per experience, as they come
            self.unigram = torch.cat([self.unigram, self.unigram.new_zeros(grow, BYTE_VOCAB)])
            self.offsets = torch.cat([self.offsets, self.offsets[-1:].expand(grow)])
        s = self.shape[labels.to(self.shape.device).long()]  # (B, T)
        self.unigram[experience] += torch.bincount(s.reshape(-1), minlength=BYTE_VOCAB)
        new = torch.cat([k.reshape(-1) for n in range(2, self.order + 1) for k in gram_keys(s, n)])
        lo, hi = int(self.offsets[experience]), int(self.offsets[experience + 1])
        merged, where = torch.unique(torch.cat([self.keys[lo:hi], new]), return_inverse=True)
        total = self.counts.new_zeros(merged.numel())
        total.index_add_(0, where, torch.cat([self.counts[lo:hi], total.new_ones(new.numel())]))
        self.keys = torch.cat([self.keys[:lo], merged, self.keys[hi:]])
        self.counts = torch.cat([self.counts[:lo], total, self.counts[hi:]])
        self.offsets[experience + 1 :] += merged.numel() - (hi - lo)
        self._cache = {}
        self._last.clear()

    def _derived(self) -> dict[str, Tensor]:
        """Float32 scoring tables, built at the first score after a change: ``p1`` (V, E)
        the add-½ unigrams; ``keys`` (K,) every key some experience saw, sorted, and
        ``counts`` (K + 1, E) its count in each (a row of zeros last, for absent keys), so
        one search serves all experiences; ``top_keys`` (K_n,) the n-grams of the top order
        some experience saw and ``top`` (K_n, E) the full interpolation of each."""
        if not self._cache:
            unigram = self.unigram + 0.5
            keys, where = torch.unique(self.keys, return_inverse=True)
            E = self.unigram.shape[0]
            counts = torch.zeros(len(keys) + 1, E, device=keys.device)
            experience = torch.repeat_interleave(
                torch.arange(E, device=keys.device), self.offsets.diff()
            )  # (M,): the experience of each stored key
            counts[where, experience] = self.counts.float()
            self._cache = {
                "p1": (unigram / unigram.sum(-1, keepdim=True)).T.float(),
                "keys": keys,
                "counts": counts,
            }
            n = self.order
            lo, hi = 2 * BYTE_VOCAB**n, 4 * BYTE_VOCAB**n  # (256**n + code)·2, flag 0
            top = keys[(keys >= lo) & (keys < hi) & (keys % 2 == 0)]
            code = top // 2 - BYTE_VOCAB**n
            history = torch.stack([code // BYTE_VOCAB**k % BYTE_VOCAB for k in range(n)][::-1], 1)
            self._cache.update(top_keys=top, top=self._interpolate(history))
        return self._cache

    @staticmethod
    def _rows(keys: Tensor, query: Tensor) -> Tensor:
        """The row of each query among sorted ``keys``, -1 where absent."""
        if keys.numel() == 0:
            return torch.full_like(query, -1)
        i = torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)
        return torch.where(keys[i] == query, i, -1)

    def _interpolate(self, h: Tensor) -> Tensor:
        """(M, m) shape histories, 1 <= m <= order -> (M, E) p^m_e(last | the m - 1 before)."""
        tables = self._derived()
        p = tables["p1"][h[:, -1]]  # (M, E)
        if h.shape[1] == 1:
            return p
        # One search for every order's n-gram and context: (M, 2·(m - 1), E) counts.
        orders = range(2, h.shape[1] + 1)
        keys = torch.cat([torch.cat(gram_keys(h[:, -n:], n), 1) for n in orders], 1)
        counts = tables["counts"][self._rows(tables["keys"], keys)]
        for n in orders:
            hits, seen = counts[:, 2 * n - 4], counts[:, 2 * n - 3]
            ml = hits / seen.clamp(min=1)
            p = torch.where(seen > 0, self.weight * ml + (1 - self.weight) * p, p)
        return p

    @torch.no_grad()
    def scores(self, x: Tensor, *, tokens: Tensor | None = None, **context) -> Tensor:
        """(B, T) bytes (``tokens``; ``x`` is the layer input, not used) -> (B, T, E)
        log-probability of byte t's shape under each experience's interpolated n-gram;
        -inf for an experience without counts."""
        if tokens is None:
            raise ValueError(
                "growth.selector=byte_shape reads the input bytes: it needs a byte language "
                "model (model.kind=transformer)"
            )
        if (kept := self._last.get(tokens)) is not None:
            return kept
        s = self.shape[tokens.long().to(self.shape.device)]  # (B, T)
        (B, T), n, E = s.shape, self.order, self.unigram.shape[0]
        tables = self._derived()
        # Byte t < n - 1 has a shorter history: padded with a shape no text has, its longer
        # contexts are unseen everywhere, and the interpolation stops where the text begins.
        s = nn.functional.pad(s, (n - 1, 0), value=_NO_SHAPE)  # (B, n - 1 + T)
        # Most n-grams of a text were seen in training: their scores are a table lookup
        # (2.5x faster than interpolating every byte), and only the others interpolate.
        row = self._rows(tables["top_keys"], gram_keys(s, n)[0])  # (B, T)
        hit = row >= 0
        p = torch.empty(B, T, E, device=s.device)
        p[hit] = tables["top"][row[hit]]
        p[~hit] = self._interpolate(s.unfold(1, n, 1)[~hit])  # histories (misses, n)
        out = torch.log((1 - self.uniform) * p + self.uniform / BYTE_VOCAB)
        empty = self.unigram.sum(-1) == 0
        return self._last.put(tokens, out.masked_fill(empty, float("-inf")))  # (B, T, E)

    def nbytes(self) -> int:
        """The memory of the counts (the scoring tables are derived from them)."""
        return sum(b.numel() * b.element_size() for b in (self.unigram, self.keys, self.counts))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # One row per experience seen and as many keys as they hold: take the saved shapes.
        for name in ("unigram", "keys", "counts", "offsets"):
            if prefix + name in state_dict:
                setattr(self, name, state_dict[prefix + name].clone())
        self._cache = {}
        self._last.clear()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

"""``ByteBigramSelector``: which experience a byte comes from, by the byte statistics of each
experience's training text (a causal naive-Bayes language identifier).

The bytes are the one feature space of a language model that no training moves, and the
text domains differ most in them: what a frozen hidden state adds on top of the byte
counts is measured in docs/task_inference.md (it adds noise, not evidence). Per
experience e the selector keeps the byte counts c_e(b) and the bigram counts c_e(a, b);
byte t scores

    log( (1 - ε)·[λ·p_e(x_t | x_{t-1}) + (1 - λ)·p_e(x_t)] + ε / 256 )

an interpolated (Jelinek & Mercer 1980) bigram, p_e(b) add-½ smoothed and the bigram
term falling back to it where the context byte was never seen in e, and the
interpolation ended at the uniform distribution over bytes (the zeroth order of Chen &
Goodman, "An empirical study of smoothing techniques for language modeling", 1999, §2.3).
That last level is what makes the identifier robust to text unlike any experience: with
add-½ alone a byte never seen in e (a space, to an experience of comma-separated tables)
costs log(½ / N_e), about -14 nats, and one such byte outweighs the evidence of many
ordinary ones; the uniform level caps that cost at log(ε / 256) (-7.2 at ε = 0.2).
``GrowingExperts`` sums the scores over bytes 0..t (causal), so the stage of byte t is
the naive-Bayes posterior mode given the prefix. Memory: (256² + 256) counts per
experience.
"""

import torch
from torch import Tensor, nn

from ..checks import fraction, unit_interval
from ..data.byte_windows import BYTE_VOCAB
from .last_call import LastCall


class ByteBigramSelector(nn.Module):
    """Reads only the input bytes, so a model's growing layers share one (``shared_by_layers``).

    Args:
    weight: λ, the bigram's share of the interpolation, 0 < λ < 1.
    uniform: ε, the uniform distribution's share, 0 <= ε < 1. Both were chosen on
        held-out training files (docs/task_inference.md): 32-byte accuracy is flat for λ
        in 0.3-0.7 and for ε in 0.1-0.3.
    """

    shared_by_layers = True

    def __init__(self, *, weight: float = 0.5, uniform: float = 0.2):
        super().__init__()
        self.weight = fraction("weight", weight)
        # A buffer, so a checkpoint records the ε its run scored with (one written before
        # this level existed loads as ε = 0, its run's selector).
        uniform = unit_interval("uniform", uniform)
        self.register_buffer("uniform", torch.tensor(uniform, dtype=torch.float64))
        self.register_buffer("unigram", torch.zeros(0, BYTE_VOCAB, dtype=torch.float64))  # (E, V)
        self.register_buffer(
            "bigram", torch.zeros(0, BYTE_VOCAB, BYTE_VOCAB, dtype=torch.float64)
        )  # (E, V, V): [e, previous byte, byte]
        self._tables: tuple[Tensor, Tensor] | None = None  # (log p(b), log mix(a, b)), float32
        self._last = LastCall()  # every layer sharing this selector asks for the same bytes

    @torch.no_grad()
    def update(self, experience: int, x: Tensor, labels: Tensor | None = None) -> None:
        """Add an experience's windows: ``labels`` (B, T), the input bytes (``x``, the layer
        input, is not used)."""
        if labels is None or labels.dim() != 2:
            raise ValueError("ByteBigramSelector.update needs the input bytes (B, T) as labels")
        while self.unigram.shape[0] <= experience:  # a row per experience, as they come
            self.unigram = torch.cat([self.unigram, self.unigram.new_zeros(1, BYTE_VOCAB)])
            self.bigram = torch.cat([self.bigram, self.bigram.new_zeros(1, BYTE_VOCAB, BYTE_VOCAB)])
        b = labels.to(self.unigram.device).long()
        ones = torch.ones(b.numel(), dtype=torch.float64, device=b.device)
        self.unigram[experience].index_add_(0, b.reshape(-1), ones)
        pairs = (b[:, :-1] * BYTE_VOCAB + b[:, 1:]).reshape(-1)
        self.bigram[experience].view(-1).index_add_(0, pairs, ones[: pairs.numel()])
        self._tables = None
        self._last.clear()

    def log_tables(self) -> tuple[Tensor, Tensor]:
        """(E, V) log((1 - ε)·p_e(b) + ε/V) and (E, V, V) log((1 - ε)·[λ·p_e(b | a) +
        (1 - λ)·p_e(b)] + ε/V), float32, computed in float64 once per change of the
        counts: scoring is then one gather per byte, which is what keeps inference within
        a few percent of evaluation."""
        if self._tables is None:
            unigram = (self.unigram + 0.5) / (self.unigram + 0.5).sum(-1, keepdim=True)  # (E, V)
            seen = self.bigram.sum(-1, keepdim=True)  # (E, V, 1): how often each context occurs
            bigram = torch.where(seen > 0, self.bigram / seen.clamp(min=1), unigram[:, None, :])
            mix = self.weight * bigram + (1 - self.weight) * unigram[:, None, :]
            eps = self.uniform
            unigram, mix = ((1 - eps) * p + eps / BYTE_VOCAB for p in (unigram, mix))
            self._tables = (unigram.log().float(), mix.log().float())
        return self._tables

    @torch.no_grad()
    def scores(self, x: Tensor, *, tokens: Tensor | None = None, **context) -> Tensor:
        """(B, T) bytes (``tokens``; ``x`` is the layer input, not used) -> (B, T, E)
        log-probability of byte t under each experience's interpolated bigram; -inf for
        an experience without counts."""
        if tokens is None:
            raise ValueError(
                "growth.selector=byte_bigram reads the input bytes: it needs a byte language "
                "model (model.kind=transformer)"
            )
        if (kept := self._last.get(tokens)) is not None:
            return kept
        log_unigram, log_mix = self.log_tables()
        t = tokens.long().to(log_mix.device)
        out = log_mix[:, t[:, :-1], t[:, 1:]]  # (E, B, T-1): byte t >= 1 given byte t-1
        first = log_unigram[:, t[:, :1]]  # (E, B, 1): byte 0 has no context, unigram only
        out = torch.cat([first, out], -1).permute(1, 2, 0)  # (B, T, E)
        empty = self.unigram.sum(-1) == 0
        return self._last.put(tokens, out.masked_fill(empty, float("-inf")))

    def nbytes(self) -> int:
        """The memory of the counts."""
        return sum(b.numel() * b.element_size() for b in (self.unigram, self.bigram))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # One row per experience seen: take the saved shapes.
        for name in ("unigram", "bigram"):
            if prefix + name in state_dict:
                setattr(self, name, state_dict[prefix + name].clone())
        if prefix + "uniform" not in state_dict and prefix + "unigram" in state_dict:
            # Written before the uniform level: score as that run's selector did.
            state_dict[prefix + "uniform"] = torch.zeros((), dtype=torch.float64)
        self._tables = None
        self._last.clear()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

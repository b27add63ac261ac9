"""A small causal Transformer language model over bytes with pluggable FFNs.

Pre-norm blocks (GPT-2 style): ``x + attn(ln(x))`` then ``x + ffn(ln(x))``. Some blocks'
FFN is the expert layer (by default the middle block, as in He 2024 where PEER replaces
the FFN of block 6 of 12); the others are dense MLPs.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import unit_interval
from ..data.byte_windows import BYTE_VOCAB
from .growing import GrowingExperts
from .task_model import TaskModel


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by n_heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, T, C/h)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """``dropout``: the residual dropout of GPT-2 (Radford et al. 2019; Vaswani et al. 2017,
    §5.4), on each branch's output before it joins the residual stream, while training."""

    def __init__(self, dim: int, heads: int, ffn: nn.Module, *, dropout: float = 0.0):
        super().__init__()
        unit_interval("dropout", dropout)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.ffn = ffn
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, task_labels: Tensor | None, tokens: Tensor | None = None):
        """x (B, T, dim); ``tokens`` (B, T), the input bytes, for a growing FFN whose
        selector reads them."""
        x = x + self.drop(self.attn(self.ln1(x)))
        if isinstance(self.ffn, GrowingExperts):
            return x + self.drop(self.ffn(self.ln2(x), task_labels, tokens=tokens))
        return x + self.drop(self.ffn(self.ln2(x), task_labels))


class ByteTransformerLM(TaskModel):
    """x (B, T) bytes -> logits (B, T, BYTE_VOCAB), from built parts (``lifelong.experiment``
    builds them from a run config; the order of construction fixes the initialisation).

    Args:
        tok: byte embedding, ``nn.Embedding(BYTE_VOCAB, dim)``; its weight is tied to the
            output projection.
        pos: position embedding, ``nn.Embedding(seq_len, dim)``.
        blocks: the ``Block``s, each with its FFN (an expert layer in ``GrowingExperts``, or
            an ``MLP``), called as ``ffn(x, task_labels)``.
    """

    def __init__(self, *, tok: nn.Embedding, pos: nn.Embedding, blocks: list["Block"]):
        super().__init__()
        if tok.num_embeddings != BYTE_VOCAB or tok.embedding_dim != pos.embedding_dim:
            raise ValueError(
                f"tok must embed {BYTE_VOCAB} bytes at the width of pos ({pos.embedding_dim}); "
                f"got {tok.num_embeddings} x {tok.embedding_dim}"
            )
        dim = tok.embedding_dim
        self.seq_len = pos.num_embeddings
        self.tok, self.pos = tok, pos
        self.blocks = nn.ModuleList(blocks)
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, BYTE_VOCAB, bias=False)
        self.lm_head.weight = self.tok.weight  # weight tying (Press & Wolf 2017)
        # GPT-2 initialisation N(0, 0.02): with tied weights the default N(0, 1) embedding
        # would start at logits of std ~√dim and a perplexity far above the uniform 256.
        for module in (self.tok, self.pos):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, x: Tensor, task_labels: Tensor | None = None):
        """x (B, T) bytes, task_labels (B,) -> logits (B, T, 256); without task labels, a
        dict {task label: logits} over the tasks trained so far (as Avalanche expects)."""
        if task_labels is None:  # Avalanche's MultiTaskModule contract: {task: output}
            return self.forward_all_tasks(x)
        B, T = x.shape
        if T > self.seq_len:
            raise ValueError(f"sequence length {T} exceeds seq_len={self.seq_len}")
        h = self.tok(x) + self.pos(torch.arange(T, device=x.device))  # (B, T, dim)
        for block in self.blocks:
            h = block(h, task_labels, x)
        return self.lm_head(self.ln_f(h))  # (B, T, 256)

"""A small causal Transformer language model over bytes with pluggable FFNs.

Pre-norm blocks (GPT-2 style): ``x + attn(ln(x))`` then ``x + ffn(ln(x))``. The FFN of the
blocks listed in ``expert_blocks`` is the expert layer (by default the middle block, as in
He 2024 where PEER replaces the FFN of block 6 of 12); the others are dense MLPs.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
    def __init__(self, dim: int, heads: int, ffn: nn.Module):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.ffn = ffn

    def forward(self, x: Tensor, task_labels: Tensor | None) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x), task_labels)


class ByteTransformerLM(TaskModel):
    """x (B, T) bytes -> logits (B, T, 256).

    Args:
        dim, n_layers, n_heads, seq_len: the usual sizes.
        make_ffn: ``make_ffn(block_index, is_expert_block)`` returns that block's FFN, a
            module called as ``ffn(x, task_labels)`` (``GrowingExperts`` or a dense one).
        expert_blocks: indices of blocks whose FFN is the expert layer; default the middle.
    """

    vocab_size = 256

    def __init__(
        self,
        *,
        dim: int,
        n_layers: int,
        n_heads: int,
        seq_len: int,
        make_ffn: Callable[[int, bool], nn.Module],
        expert_blocks: list[int] | None = None,
    ):
        super().__init__()
        if expert_blocks is None:
            expert_blocks = [n_layers // 2]
        bad = [b for b in expert_blocks if not 0 <= b < n_layers]
        if bad:
            raise ValueError(f"expert_blocks={bad} out of range; blocks are 0..{n_layers - 1}")
        self.seq_len = seq_len
        self.tok = nn.Embedding(self.vocab_size, dim)
        self.pos = nn.Embedding(seq_len, dim)
        self.blocks = nn.ModuleList(
            Block(dim, n_heads, make_ffn(i, i in expert_blocks)) for i in range(n_layers)
        )
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, self.vocab_size, bias=False)
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
            h = block(h, task_labels)
        return self.lm_head(self.ln_f(h))  # (B, T, 256)

"""The model a run config asks for: an MLP classifier or a byte Transformer, with the
growing layer in its expert slot(s)."""

from torch import nn

from ..config import ConfigError
from ..data.byte_windows import BYTE_VOCAB
from ..layers import MLP
from ..models import Block, ByteTransformerLM, GrowingExperts, MLPClassifier
from .layers import build_growing


def build_model(cfg, spec) -> nn.Module:
    """The model for ``spec`` (a ``StreamSpec``): ``model.kind`` must fit its task."""
    m = cfg.model
    if spec.task == "lm":
        if m.ffn == "expert_choice":
            raise ConfigError(
                "model.ffn=expert_choice sees every token of the batch, future ones included, "
                "so it cannot be used for causal language modelling; use moe, peer or pkm"
            )
        if m.kind != "transformer":
            raise ConfigError(
                f"stream '{cfg.stream.kind}' is language modelling; set model.kind=transformer"
            )
        return build_transformer(cfg, seq_len=spec.input_shape[0])
    if m.kind != "mlp":
        raise ConfigError(f"stream '{cfg.stream.kind}' is classification; set model.kind=mlp")
    in_features = 1
    for s in spec.input_shape:
        in_features *= s
    ffn = build_growing(cfg)  # first: the parameters are drawn in this order
    return MLPClassifier(
        in_features=in_features,
        num_classes=spec.num_classes,
        dim=m.dim,
        ffn=ffn,
        head=m.head,
        stem=m.stem,
    )


def build_transformer(cfg, *, seq_len: int) -> ByteTransformerLM:
    """Embeddings, then block by block its FFN (the growing layer in ``expert_blocks``,
    default the middle block, else a 4x MLP) and attention, then the output: the order in
    which the parameters are drawn from the seeded generator."""
    m = cfg.model
    experts = [m.n_layers // 2] if m.expert_blocks is None else list(m.expert_blocks)
    bad = [b for b in experts if not 0 <= b < m.n_layers]
    if bad:
        raise ConfigError(
            f"model.expert_blocks={experts} names blocks {bad}; blocks are 0..{m.n_layers - 1}"
        )
    tok, pos = nn.Embedding(BYTE_VOCAB, m.dim), nn.Embedding(seq_len, m.dim)
    blocks = []
    for i in range(m.n_layers):
        ffn = build_growing(cfg, causal=True) if i in experts else MLP(m.dim, hidden=4 * m.dim)
        blocks.append(Block(m.dim, m.n_heads, ffn, dropout=m.dropout))
    growing = [b.ffn for b in blocks if isinstance(b.ffn, GrowingExperts)]
    growing = [f for f in growing if f.selector is not None]
    if growing and getattr(growing[0].selector, "shared_by_layers", False):
        # A selector of the input bytes sees the same thing from every layer: one copy of
        # its counts, filled once, scoring each batch once for all of them.
        for ffn in growing[1:]:
            ffn.selector = growing[0].selector
    return ByteTransformerLM(tok=tok, pos=pos, blocks=blocks)

"""Turn a run config into objects: device, model, criterion, Avalanche strategy.

Config objects stop here: layers and models receive flat keyword arguments (BRIEF §7).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import PEER, PKM
from .layers.dense import MLP, DenseFFN
from .layers.expert_choice import ExpertChoiceMoE
from .layers.moe import TokenChoiceMoE
from .layers.moe_common import positive_int
from .models.growing import GrowingExperts
from .models.mlp import MLPClassifier
from .models.transformer import ByteTransformerLM

STRATEGIES = ("naive", "ewc", "si", "lwf", "replay", "joint")
FFNS = ("peer", "pkm", "moe", "expert_choice", "dense")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available; use device=auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device={name!r} is not supported; choose auto, cpu or cuda")
    return torch.device(name)


class LMCrossEntropy(nn.Module):
    """Mean next-byte cross-entropy: logits (B, T, V), targets (B, T)."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def peer_active_params(model_cfg, *, added_sub_keys: int = 0) -> int:
    """Parameters one token uses in the configured PEER layer: the query network, every
    sub-key (all are scored), and heads·topk experts of 2·dim weights each.
    ``added_sub_keys``: sub-keys per side its growths add (the count after growth)."""
    p, d = model_cfg.peer, model_cfg.dim
    key_dim = p.key_dim or d
    query = d * p.heads * key_dim + (
        2 * p.heads * key_dim if p.query_batchnorm else p.heads * key_dim
    )
    sub_keys = 2 * (math.isqrt(p.num_experts) + added_sub_keys) * (key_dim // 2)
    return query + sub_keys + p.heads * p.topk * 2 * d


def dense_hidden(model_cfg, *, added_sub_keys: int = 0) -> int:
    """Dense FFN width with the active parameters per token of the configured PEER layer
    (after ``added_sub_keys`` more sub-keys per side), so that dense baselines are
    compared at equal active parameters (BRIEF §2)."""
    if model_cfg.dense_hidden is not None:
        return model_cfg.dense_hidden
    active = peer_active_params(model_cfg, added_sub_keys=added_sub_keys)
    return max(1, round(active / (2 * model_cfg.dim)))


def moe_hidden(
    model_cfg, *, experts_per_token: float, added_sub_keys: int = 0, added_experts: int = 0
) -> int:
    """Expert width giving an MoE the active parameters per token of the configured PEER
    layer: router (dim·E) + experts_per_token experts of 2·dim·hidden (topk for token
    choice; the capacity factor, on average, for expert choice). ``added_sub_keys`` and
    ``added_experts``: what growth adds to the PEER layer and to the MoE, to match the
    two after growth."""
    moe = model_cfg.moe
    if moe.hidden is not None:
        return moe.hidden
    active = peer_active_params(model_cfg, added_sub_keys=added_sub_keys)
    per_token = active - model_cfg.dim * (moe.num_experts + added_experts)
    return max(1, round(per_token / (experts_per_token * 2 * model_cfg.dim)))


def moe_experts_per_token(model_cfg) -> float:
    """Experts a token reaches on average: topk (token choice), the capacity factor
    (expert choice: N experts each take CF·T/N of T tokens)."""
    moe = model_cfg.moe
    return moe.topk if model_cfg.ffn == "moe" else moe.capacity_factor


def build_ffn(cfg, *, expert: bool) -> GrowingExperts:
    """The FFN of one block: the configured expert layer (model.ffn=dense included: it grows
    by growth.units hidden units, default its initial width), or for the transformer's
    ordinary blocks a plain MLP that never grows and is no expert layer."""
    m, g = cfg.model, cfg.growth
    grow_size = g.experts if m.ffn in ("moe", "expert_choice") else g.sub_keys
    if expert and m.ffn in ("peer", "pkm"):
        p = m.peer  # the product-key sizes serve both PEER and PKM
        keys = dict(
            num_experts=p.num_experts,
            heads=p.heads,
            topk=p.topk,
            key_dim=p.key_dim,
            score=p.score,
            query_batchnorm=p.query_batchnorm,
        )
        if m.ffn == "peer":
            layer = PEER(m.dim, activation=p.activation, **keys)
        else:
            layer = PKM(m.dim, **keys)
    elif expert and m.ffn in ("moe", "expert_choice"):
        moe = m.moe
        sizes = dict(
            num_experts=moe.num_experts,
            hidden=moe_hidden(m, experts_per_token=moe_experts_per_token(m)),
            activation=m.peer.activation,
        )
        if m.ffn == "moe":
            layer = TokenChoiceMoE(
                m.dim,
                topk=moe.topk,
                capacity_factor=moe.capacity_factor,
                aux_loss_weight=moe.aux_loss_weight,
                random_second=moe.random_second,
                **sizes,
            )
        else:  # expert choice (Zhou et al. 2022) picks top-C tokens per expert
            layer = ExpertChoiceMoE(m.dim, capacity_factor=moe.capacity_factor, **sizes)
    elif expert and m.ffn == "dense":
        hidden = dense_hidden(m)
        layer = DenseFFN(m.dim, hidden=hidden, activation=m.peer.activation)
        grow_size = hidden if g.units is None else positive_int("growth.units", g.units)
    elif expert:
        raise ValueError(f"model.ffn={m.ffn!r} is not supported; choose one of {FFNS}")
    else:  # the transformer's ordinary blocks: a standard 4x MLP
        layer = MLP(m.dim, hidden=4 * m.dim)
    return GrowingExperts(
        layer,
        policy=g.policy,
        grow_size=grow_size,
        init=g.init,
        routing=g.routing,
        freeze_query=g.freeze_query,
    )


def build_stream_from_config(cfg):
    """The ``StreamSpec`` of a run config's ``stream`` group (``kind`` plus its options)."""
    from omegaconf import OmegaConf

    from .data import build_stream

    return build_stream(**OmegaConf.to_container(cfg.stream, resolve=True))


def build_model(cfg, spec) -> nn.Module:
    m = cfg.model
    if spec.task == "lm" and m.ffn == "expert_choice":
        raise ValueError(
            "model.ffn=expert_choice sees every token of the batch, future ones included, so "
            "it cannot be used for causal language modelling; use moe, peer or pkm"
        )
    if spec.task == "lm":
        if m.kind != "transformer":
            raise ValueError(
                f"stream '{cfg.stream.kind}' is language modelling; set model.kind=transformer"
            )
        return ByteTransformerLM(
            dim=m.dim,
            n_layers=m.n_layers,
            n_heads=m.n_heads,
            seq_len=spec.input_shape[0],
            make_ffn=lambda i, is_expert: build_ffn(cfg, expert=is_expert),
            expert_blocks=None if m.expert_blocks is None else list(m.expert_blocks),
        )
    if m.kind != "mlp":
        raise ValueError(f"stream '{cfg.stream.kind}' is classification; set model.kind=mlp")
    in_features = 1
    for s in spec.input_shape:
        in_features *= s
    return MLPClassifier(
        in_features=in_features,
        num_classes=spec.num_classes,
        dim=m.dim,
        ffn=build_ffn(cfg, expert=True),
        head=m.head,
        stem=m.stem,
    )


def build_regularization(cfg) -> list:
    """[RegularizationPlugin] for train.regularizer, or [] for none."""
    from omegaconf import OmegaConf

    from .regularizers import RegularizationPlugin, build_regularizer

    t = cfg.train
    if t.regularizer == "none":
        return []
    if t.strategy in ("joint", "ewc", "si", "lwf"):
        raise ValueError(
            f"train.regularizer={t.regularizer} needs a sequential strategy without its own "
            f"regulariser (naive or replay), not train.strategy={t.strategy}"
        )
    options = OmegaConf.to_container(t.regularizer_options, resolve=True)
    if t.regularizer == "distill" and cfg.model.kind == "mlp" and cfg.model.head == "multi":
        options.setdefault("labels", "previous")  # the old copy has no head for a new task
    regularizer = build_regularizer(t.regularizer, **options)  # names valid names/options
    return [RegularizationPlugin([regularizer], weights=[t.regularizer_lambda])]


def build_strategy(cfg, *, model, optimizer, criterion, evaluator, device, plugins=()):
    from avalanche.training import EWC, JointTraining, LwF, Naive, SynapticIntelligence
    from avalanche.training.plugins import ReplayPlugin

    from .training.replay_buffer import IndexedExperienceBuffer

    t = cfg.train
    common = dict(
        model=model,
        optimizer=optimizer,
        criterion=criterion,
        train_mb_size=t.batch_size,
        train_epochs=t.epochs,
        eval_mb_size=t.eval_batch_size,
        device=device,
        plugins=list(plugins),
        evaluator=evaluator,
    )
    if t.strategy == "naive":
        return Naive(**common)
    if t.strategy == "ewc":
        return EWC(ewc_lambda=t.ewc_lambda, mode="separate", **common)
    if t.strategy == "si":
        return SynapticIntelligence(si_lambda=t.si_lambda, **common)
    if t.strategy == "lwf":
        if cfg.model.kind == "transformer":
            raise ValueError(
                "train.strategy=lwf distils class logits (Avalanche LwF) and does not support "
                "language models; use naive, ewc, si or replay"
            )
        return LwF(alpha=t.lwf_alpha, temperature=t.lwf_temperature, **common)
    if t.strategy == "replay":
        # Avalanche's replay, with a memory a checkpoint can hold (sample indices).
        memory = IndexedExperienceBuffer(t.replay_mem_size)
        replay = ReplayPlugin(mem_size=t.replay_mem_size, storage_policy=memory)
        return Naive(**{**common, "plugins": [replay, *common["plugins"]]})
    if t.strategy == "joint":  # the upper bound: one pass over the union of the stream
        return JointTraining(**common)
    raise ValueError(f"train.strategy={t.strategy!r} is not supported; choose one of {STRATEGIES}")

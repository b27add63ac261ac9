"""``LAYERS``: the growing layers a run config can name (``model.ffn=<name>``).

An entry says how to build the layer from flat keyword arguments, which config group
holds those arguments (``model.<name>``, a dataclass whose fields are the arguments plus
``grow_size``), and what one growth step adds. docs/extending.md adds a layer:

    with LAYERS.register("mine", LayerEntry(build=Mine, options=MineOptions, adds=...)):
        ...  # model.ffn=mine now builds Mine(dim, **model.mine)

The run defaults below are small (a CPU trains them in seconds); the layers' own
defaults are the papers'.
"""

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .contract import GrowingLayer
from .dense import DenseFFN, dense_hidden_for
from .expert_choice import ExpertChoiceMoE
from .moe import TokenChoiceMoE
from .moe_common import moe_hidden_for
from .peer import PEER, peer_active_params, sub_keys_for
from .pkm import PKM


@dataclass(frozen=True)
class LayerEntry:
    """How a run builds and grows one kind of layer.

    Attributes:
        build: ``build(dim, **options) -> GrowingLayer``, e.g. the layer class.
        options: a dataclass: the config group ``model.<name>``. Its fields are ``build``'s
            keyword arguments with their run defaults, plus ``grow_size`` (what each growth
            passes to ``layer.grow``), which ``build`` does not receive.
        adds: ``adds(layer, size) -> int``, the experts ``layer.grow(size)`` adds (read
            before growing).
        fit: optional sizing for equal-compute comparisons (docs/benchmarks.md):
            ``fit(active, dim=, options=, added=) -> {option: value}``, the options that give
            ``active`` parameters per token once growth has added ``added`` (in
            ``grow_size``'s unit). Options set to None in a config are filled this way.
    """

    build: Callable[..., GrowingLayer]
    options: type
    adds: Callable[[GrowingLayer, Any], int]
    fit: Callable[..., dict] | None = None

    def __post_init__(self):
        options = self.options
        dataclass_type = isinstance(options, type) and dataclasses.is_dataclass(options)
        if not dataclass_type or "grow_size" not in {f.name for f in dataclasses.fields(options)}:
            raise TypeError(
                "LayerEntry.options must be a dataclass with the build's keyword arguments and "
                "a grow_size field (what one growth adds); see docs/extending.md"
            )


class _Registration:
    """Undoes a ``LayerRegistry.register``: call ``remove()`` or use it as a context."""

    def __init__(self, entries: dict, name: str):
        self._entries, self.name = entries, name

    def remove(self):
        self._entries.pop(self.name, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class LayerRegistry(Mapping[str, LayerEntry]):
    """name -> ``LayerEntry``; ``register`` adds one, refusing a name that is taken."""

    def __init__(self, entries: Mapping[str, LayerEntry]):
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> LayerEntry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def register(self, name: str, entry: LayerEntry) -> _Registration:
        if not name.isidentifier():
            raise ValueError(f"layer name {name!r} must be an identifier: it is a config key")
        if name in self._entries:
            raise ValueError(f"a layer named {name!r} is registered already; choose another")
        if not isinstance(entry, LayerEntry):
            raise TypeError(f"register {name!r} with a LayerEntry, not {type(entry).__name__}")
        self._entries[name] = entry
        return _Registration(self._entries, name)


@dataclass
class PEEROptions:  # model.peer
    num_experts: int = 16**2  # initial experts, a perfect square n²
    heads: int = 4  # query heads h
    topk: int = 4  # experts per head k
    key_dim: int | None = None  # product-key width (even); default: model.dim
    activation: str = "gelu"  # gelu | relu
    score: str = "softmax"  # router over each head's k scores: softmax | sigmoid
    query_batchnorm: bool = True  # BatchNorm on the query (paper default)
    # Row-sparse expert gradients for LazyAdamW (a step's cost does not grow with N); the
    # layer's own default is dense gradients, which any torch.optim optimizer accepts.
    sparse_grad: bool = True
    grow_size: int = 8  # sub-keys per side added at each growth (2·n·m + m² experts)


@dataclass
class PKMOptions:  # model.pkm; a slot reads one value (PEER two), so twice PEER's topk
    num_experts: int = 16**2  # initial memory slots, a perfect square n²
    heads: int = 4
    topk: int = 8
    key_dim: int | None = None
    score: str = "softmax"
    query_batchnorm: bool = True
    sparse_grad: bool = True  # row-sparse value gradients for LazyAdamW (as model.peer)
    grow_size: int = 8  # sub-keys per side added at each growth


@dataclass
class MoEOptions:  # model.moe: token choice, Switch (topk 1) or GShard/Mixtral (topk 2)
    num_experts: int = 8  # initial experts
    hidden: int | None = None  # expert width; default: the active parameters of model.peer
    topk: int = 2  # experts per token
    capacity_factor: float = 1.25  # slots per expert = round(cf · tokens / experts)
    aux_loss_weight: float = 0.01  # Switch load-balancing loss weight α
    random_second: bool = False  # GShard: second expert sampled by its gate
    activation: str = "gelu"
    grow_size: int = 4  # experts added at each growth


@dataclass
class ExpertChoiceOptions:  # model.expert_choice (Zhou et al. 2022); not causal: no LMs
    num_experts: int = 8
    hidden: int | None = None  # expert width; default: the active parameters of model.peer
    capacity_factor: float = 1.25  # experts per token on average
    activation: str = "gelu"
    grow_size: int = 4  # experts added at each growth


@dataclass
class DenseOptions:  # model.dense: the dense baseline, which can also grow
    hidden: int | None = None  # units; default: the active parameters of model.peer
    activation: str = "gelu"
    grow_size: int | None = None  # units added at each growth; default: its initial width


def _product_key_adds(layer, size: int) -> int:
    return 2 * layer.num_sub_keys * size + size * size  # n² -> (n + m)²


def _fit_pkm(active: int, *, dim: int, options: dict, added: int) -> dict:
    """topk such that PKM's retrieved values fill what is left of ``active`` once its query
    network and sub-keys (after ``added`` more per side) are counted."""
    o = options
    keys = peer_active_params(
        dim,
        heads=o["heads"],
        topk=0,
        key_dim=o["key_dim"] or dim,
        query_batchnorm=o["query_batchnorm"],
        sub_keys=sub_keys_for(o["num_experts"]) + added,
    )
    return {"topk": max(1, round((active - keys) / (o["heads"] * dim)))}


def _fit_moe(experts_per_token: str) -> Callable[..., dict]:
    def fit(active: int, *, dim: int, options: dict, added: int) -> dict:
        hidden = moe_hidden_for(
            active,
            dim=dim,
            num_experts=options["num_experts"] + added,
            experts_per_token=options[experts_per_token],
        )
        return {"hidden": hidden}

    return fit


def _fit_dense(active: int, *, dim: int, options: dict, added: int) -> dict:
    return {"hidden": max(1, dense_hidden_for(active, dim=dim) - added)}


LAYERS = LayerRegistry(
    {
        "peer": LayerEntry(PEER, PEEROptions, _product_key_adds),
        "pkm": LayerEntry(PKM, PKMOptions, _product_key_adds, fit=_fit_pkm),
        "moe": LayerEntry(TokenChoiceMoE, MoEOptions, lambda layer, m: m, fit=_fit_moe("topk")),
        "expert_choice": LayerEntry(
            ExpertChoiceMoE,
            ExpertChoiceOptions,
            lambda layer, m: m,
            fit=_fit_moe("capacity_factor"),
        ),
        "dense": LayerEntry(
            DenseFFN,
            DenseOptions,
            lambda layer, m: layer.stage_bounds[0] if m is None else m,
            fit=_fit_dense,
        ),
    }
)

"""Typed run configuration: YAML files merged onto a schema, with dotted overrides.

    cfg = load_config("configs/split_digits_task_il.yaml", ["train.epochs=2", "model.ffn=dense"])

Every field has a comment; an unknown key, a wrong type or a missing file raises
``ConfigError`` with one line that names the problem and the fix.
"""

import difflib
import importlib
import inspect
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from .config_checks import check_config


class ConfigError(ValueError):
    """A configuration problem, phrased for the command line."""


@dataclass
class ModelConfig:
    kind: str = "mlp"  # mlp (classification) | transformer (byte LM)
    # The growing layer: a name in lifelong.layers.LAYERS (peer | pkm | moe | expert_choice |
    # dense, or one you register); its options are the group model.<name>, e.g. model.peer.
    ffn: str = "peer"
    dim: int = 64  # model width
    head: str = "single"  # mlp: single head | multi (one per task label, task-IL)
    stem: bool = True  # mlp: Linear+ReLU before the FFN; false feeds the input (dim = features)
    n_layers: int = 4  # transformer blocks
    n_heads: int = 4  # attention heads
    dropout: float = 0.0  # transformer: residual dropout on each block's branches in training
    expert_blocks: list[int] | None = None  # transformer blocks with the expert FFN; default middle
    # Shared parameters frozen from the second experience on: name prefixes (e.g. ["stem"]),
    # ["shared"] for every parameter that growth does not own (growing layers, their query
    # networks and per-task heads are owned by growth), or ["backbone"]: those but the head.
    freeze_after_first: list[str] = field(default_factory=list)
    # + one group per registered layer, model.<name>: its options (lifelong.layers.LAYERS)


@dataclass
class GrowthConfig:  # how much each growth adds is the layer's: model.<ffn>.grow_size
    policy: str = "every_experience"  # every_experience | new_task_label | never
    init: str = "random"  # new experts: random | upcycle (copies of the most-used)
    # task_aware (the stage of the sample's task) | task_agnostic (every expert) | inferred
    # (no task label: the stage of the experience a selector infers; docs/task_inference.md)
    routing: str = "task_aware"
    freeze_query: bool = True  # freeze query networks (and BatchNorm stats) after experience 0
    # routing=inferred: gaussian (per-experience means, shared shrunk covariance, of the
    # layer's input) | key_affinity (the stage whose product keys best match the query) |
    # byte_bigram (byte language models: each experience's byte and byte-pair counts) |
    # byte_shape (byte LMs: n-grams of the bytes' shapes, digits and letters collapsed)
    selector: str = "gaussian"
    selector_order: int = 7  # byte_shape: the longest n-gram, 2 to 7
    selector_shrinkage: float = 0.1  # gaussian: covariance shrinkage toward a scaled identity
    # gaussian: width of the random ReLU features the Gaussians model (0: the input itself)
    selector_features: int = 256
    selector_per_class: bool = True  # gaussian, classification: one Gaussian per class


@dataclass
class TrainConfig:
    strategy: str = "naive"  # naive | ewc | si | lwf | replay | joint (the upper bound)
    epochs: int = 3  # epochs per experience
    batch_size: int = 64
    eval_batch_size: int = 256
    lr: float = 3e-3
    # Learning rate within each experience: constant | cosine (warm up over the first
    # `warmup` fraction of its steps, then a half cosine to zero; again every experience)
    schedule: str = "constant"
    warmup: float = 0.0
    weight_decay: float = 0.0  # decoupled (AdamW); frozen experts are never decayed
    # β of a moving average of the trained weights that replaces them when each experience
    # ends (0: off); lifelong/plugins/weight_average.py
    ema: float = 0.0
    # Start every experience with a fresh optimizer state (Adam's moments and step counts);
    # false carries them over, as Avalanche does
    reset_optimizer: bool = False
    # ε of label smoothing on the training loss (0: off); evaluation losses stay plain;
    # lifelong/models/cross_entropy.py
    label_smoothing: float = 0.0
    ewc_lambda: float = 100.0  # strategy=ewc
    si_lambda: float = 1.0  # strategy=si
    lwf_alpha: float = 1.0  # strategy=lwf
    lwf_temperature: float = 2.0  # strategy=lwf
    replay_mem_size: int = 200  # strategy=replay: exemplars kept
    eval_initial: bool = True  # evaluate before training, for forward transfer (FWT)
    # fp32 | bf16: forward passes under bf16 autocast (weights and optimizer stay fp32)
    precision: str = "fp32"
    # LazyAdamW's moments of the expert tables: fp32 | bf16 (half the bytes) | rowwise
    # (one second moment per row) | bf16_rowwise (both: a quarter); lifelong/optim/lazy_adamw.py
    moments: str = "fp32"
    # Regulariser of the shared parameters (docs/regularizers.md): none | l2 | ewc | si |
    # distill | gen_distill, or of what growth adds: l2_sp. It composes with any strategy,
    # growth and replay. Several at once: a list of names with a list of λ, and options by
    # name, e.g.
    # regularizer=[gen_distill,l2] regularizer_lambda=[1,1] regularizer_options.l2.params=[tok.]
    regularizer: Any = "none"  # a name, or a list of names
    regularizer_lambda: Any = 1.0  # λ: the penalty's weight in the loss (a list for a list)
    regularizer_options: dict[str, Any] = field(default_factory=dict)  # e.g. {decay: 0.9}


@dataclass
class LogConfig:
    tensorboard: bool = True  # events in the run directory
    progress: bool = True  # progress bars
    png: bool = True  # PNG plots
    level: str = "info"  # console messages: debug | info | warning | error


@dataclass
class DistConfig:
    # Data-parallel runs: `torchrun --nproc_per_node=N -m lifelong run ...` (docs/running.md).
    # One process (no torchrun, or N=1) reads none of these keys.
    backend: str = "auto"  # auto (nccl on CUDA, gloo on the CPU) | gloo | nccl
    # Seconds a rank waits for the others in one collective before the run stops (a rank
    # that died is noticed at once; this bounds a rank that hangs).
    timeout_s: float = 300.0
    # PEER's expert rows spread over the ranks, each holding 1/N of them and their optimizer
    # state (lifelong.layers.ShardedPEER, docs/scaling.md); one process holds them all.
    shard_experts: bool = False


@dataclass
class RunConfig:
    # Python modules imported before the config is read, e.g. one that registers a layer
    # (docs/extending.md); a run's config.yaml keeps them, so eval and resume import them too.
    imports: list[str] = field(default_factory=list)
    name: str = "default"  # run directory name under runs_dir
    runs_dir: str = "runs"
    # Continue the run in runs_dir/name from its last finished experience (its checkpoint),
    # with the same config; without it an existing run directory is never touched.
    resume: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    # The task stream: `kind` plus that kind's options (see docs/streams.md).
    stream: dict[str, Any] = field(default_factory=lambda: {"kind": "text_domains"})
    model: ModelConfig = field(default_factory=ModelConfig)
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    dist: DistConfig = field(default_factory=DistConfig)


def _closest(key: str, node) -> str:
    """' (did you mean X?)' for a mistyped dotted key, else '': a close name beside it, else
    a key anywhere in the schema with that last name (``model.topk``: ``model.peer.topk``)."""
    parts = key.split(".")
    parent = node
    for part in parts[:-1]:
        if not isinstance(parent, DictConfig) or part not in parent:
            break
        parent = parent[part]
    if isinstance(parent, DictConfig):
        match = difflib.get_close_matches(parts[-1], [str(k) for k in parent.keys()], n=1)
        if match:
            prefix = ".".join(parts[: len(parts) - 1])
            return f" (did you mean {prefix + '.' if prefix else ''}{match[0]}?)"
    leaves = list(_dotted_keys(node))
    same_name = [k for k in leaves if k.rsplit(".", 1)[-1] == parts[-1]]
    match = same_name[:1] or difflib.get_close_matches(key, leaves, n=1, cutoff=0.7)
    return f" (did you mean {match[0]}?)" if match else ""


def _dotted_keys(node, prefix: str = ""):
    """Every leaf key of a config, dotted."""
    for k, v in node.items_ex(resolve=False) if isinstance(node, DictConfig) else ():
        if isinstance(v, DictConfig):
            yield from _dotted_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def _example(key: str, schema) -> str:
    """How to set ``key`` right, shown by its schema default: 'pass e.g. train.epochs=3'."""
    default = OmegaConf.select(schema, key, default=None) if key else None
    if isinstance(default, DictConfig):
        first = next(iter(default.keys()), "...")
        return f"{key} is a group of keys; set them one by one, e.g. {key}.{first}=..."
    if isinstance(default, ListConfig):
        return f"pass a list, e.g. {key}=[a,b]"
    if isinstance(default, bool):
        return f"pass true or false, e.g. {key}={str(default).lower()}"
    if default is None:  # an optional field: its type is in its comment
        home = (
            "layers/registry.py"
            if key.split(".")[1:2] in [[n] for n in _layer_names()]
            else "config.py"
        )
        return f"see the key's type and comment in lifelong/{home}"
    return f"pass e.g. {key}={default}"


def _explain(err: OmegaConfBaseException, schema, key: str = "") -> str:
    """One line for an OmegaConf error; ``key`` names the override being merged, because
    OmegaConf leaves full_key empty when a whole group (``train=5``) has the wrong type."""
    key = getattr(err, "full_key", None) or key
    if isinstance(err, ConfigKeyError):
        return f"unknown config key '{key}'{_closest(key, schema)}"
    # e.g. "Value 'abc' of type 'str' could not be converted to Integer"
    problem = str(err.msg if isinstance(err.msg, str) else err).splitlines()[0].rstrip(".")
    if isinstance(err, ValidationError) and key:
        return f"config key '{key}': {problem}; {_example(key, schema)}"
    return problem


def _load_yaml_chain(path: Path, seen=()) -> list:
    """The YAML at ``path``, preceded by the file its ``base:`` key names (relative to it),
    so a smoke variant can say ``base: split_digits_task_il.yaml`` and change a few keys."""
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; pass a YAML file from configs/")
    if path.resolve() in seen:
        raise ConfigError(f"config file '{path}' names itself as a base, directly or not")
    try:
        plain = yaml.safe_load(path.read_text())  # safe: a YAML tag never builds an object
        node = OmegaConf.load(path)
    except Exception as err:  # noqa: BLE001 - YAML errors come in many types
        raise ConfigError(
            f"config file '{path}' is not valid YAML: {err}".splitlines()[0]
        ) from None
    if not plain:
        raise ConfigError(f"config file '{path}' is empty; a config maps keys to values")
    if not isinstance(plain, dict):
        raise ConfigError(
            f"config file '{path}' holds a {type(plain).__name__}, not a mapping of keys to "
            "values; write e.g. 'train: {epochs: 2}'"
        )
    chain = []
    if "base" in node:
        base = path.parent / str(node.pop("base"))
        chain = _load_yaml_chain(base, (*seen, path.resolve()))
    return [*chain, node]


def schema() -> DictConfig:
    """``RunConfig`` with one group ``model.<name>`` per registered layer, typed by the
    layer's options dataclass."""
    from .layers import LAYERS

    cfg = OmegaConf.structured(RunConfig)
    with open_dict(cfg.model):
        for name, entry in LAYERS.items():
            cfg.model[name] = OmegaConf.structured(entry.options)
    return cfg


def keys_named(message: str, prefix: str, keys) -> str:
    """``message`` with every ``key=`` of ``keys`` written as the config key ``prefix+key=``,
    so that an error raised by a layer or builder names what to change in a config."""
    for key in sorted(keys, key=len, reverse=True):
        message = re.sub(rf"(?<![\w.]){re.escape(key)}=", f"{prefix}{key}=", message)
    return message


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> DictConfig:
    """The schema, merged with the YAML at ``path`` (if any), then with ``key=value`` overrides."""
    layers = _load_yaml_chain(Path(path)) if path is not None else []
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"override '{bad[0]}' is not key=value (e.g. train.epochs=2)")
    _import_modules(layers, overrides)  # first: they may add layers, hence config groups
    schema_cfg = schema()
    cfg = _merge([schema_cfg, *layers], schema_cfg)
    for override in overrides:  # one at a time, so an error can name the override's key
        cfg = _merge([cfg, [override]], schema_cfg, key=override.split("=", 1)[0])
    if "kind" not in cfg.stream:
        raise ConfigError("stream.kind is missing; set it, e.g. stream.kind=split_digits")
    if cfg.model.ffn not in cfg.model or not isinstance(cfg.model[cfg.model.ffn], DictConfig):
        raise ConfigError(
            f"model.ffn={cfg.model.ffn!r} is not a registered layer{_closest_name(cfg)}; "
            f"choose one of {', '.join(_layer_names())} or register yours (docs/extending.md)"
        )
    check_config(cfg, error=ConfigError)
    _seed_the_stream(cfg)  # last: it imports the stream builders (and Avalanche)
    return cfg


def _import_modules(layers: list, overrides: list[str]) -> None:
    """Import the modules that ``imports`` names in the YAML files or the overrides."""
    imports = [OmegaConf.from_dotlist([o]) for o in overrides if o.split("=", 1)[0] == "imports"]
    try:
        names = OmegaConf.merge({"imports": []}, *layers, *imports).imports
    except OmegaConfBaseException:
        return  # the typed merge that follows names the problem
    if not isinstance(names, ListConfig):
        return  # likewise: imports must be a list
    if names and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # as `python -m` would; last, so it shadows nothing
    for module in names:
        try:
            importlib.import_module(str(module))
        except ImportError as err:
            raise ConfigError(
                f"imports: module '{module}' cannot be imported ({err}); install it or run "
                f"from the folder that holds it"
            ) from None


def _merge(layers: list, schema, key: str = "") -> DictConfig:
    """OmegaConf.merge of configs (a list stands for a dotlist), errors as ConfigError."""
    try:
        return OmegaConf.merge(
            *(OmegaConf.from_dotlist(x) if isinstance(x, list) else x for x in layers)
        )
    except OmegaConfBaseException as err:
        raise ConfigError(_explain(err, schema, key)) from None
    except TypeError as err:  # e.g. a list over a mapping: "incompatible container types"
        raise ConfigError(
            f"override '{key}': {err}; a list cannot replace a mapping, nor a mapping a list"
        ) from None
    except yaml.YAMLError as err:  # e.g. a YAML tag in an override: never constructed
        problem = str(err).splitlines()[0]
        raise ConfigError(
            f"override '{key}': {problem}; a value is a plain YAML number, string or list"
        ) from None


def _seed_the_stream(cfg: DictConfig) -> None:
    """``stream.seed`` defaults to the run's ``seed``, so that seeds vary everything random
    (class order and split, permutations, text sampling), not only the initialisation; it
    is written into the config, so config.yaml states the stream a run used."""
    from .data import STREAMS

    builder = STREAMS.get(cfg.stream.kind)
    if builder is not None and "seed" not in cfg.stream:
        if "seed" in inspect.signature(builder).parameters:
            cfg.stream.seed = cfg.seed


def _layer_names() -> list[str]:
    from .layers import LAYERS

    return list(LAYERS)


def _closest_name(cfg) -> str:
    match = difflib.get_close_matches(str(cfg.model.ffn), _layer_names(), n=1)
    return f" (did you mean {match[0]}?)" if match else ""

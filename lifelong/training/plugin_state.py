"""The state a run's plugins carry from one experience to the next, for checkpoints.

A plugin of this library says what it carries with ``state_dict()`` and takes it back with
``load_state_dict(state, model=..., datasets=...)``. Avalanche's own stateful plugins get
adapters here: the replay memory (through ``IndexedExperienceBuffer``), EWC's and SI's
``ParamData`` dictionaries and LwF's previous model. Everything is turned into tensors and
plain containers, so the checkpoint loads with ``weights_only=True``.

``load_state_dict`` context: ``model`` is the model as it was when the state was taken;
``datasets`` maps a finished experience id to its training dataset.
"""

import copy
from collections import defaultdict

from avalanche.training.plugins import (
    EWCPlugin,
    LwFPlugin,
    ReplayPlugin,
    SynapticIntelligencePlugin,
)
from avalanche.training.utils import ParamData

PARAM_DATA = "__param_data__"  # marks an encoded ParamData


def _encode(value):
    """ParamData (anywhere inside dicts, lists, tuples) -> {PARAM_DATA: name, "data": t}."""
    if isinstance(value, ParamData):
        return {PARAM_DATA: value.name, "data": value.data}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_encode(v) for v in value)
    return value


def _decode(value):
    if isinstance(value, dict) and PARAM_DATA in value:
        return ParamData(value[PARAM_DATA], init_tensor=value["data"])
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_decode(v) for v in value)
    return value


def _ewc(plugin: EWCPlugin):
    return {
        "saved_params": _encode(plugin.saved_params),
        "importances": _encode(plugin.importances),
    }


def _load_ewc(plugin: EWCPlugin, state, **context):
    plugin.saved_params = defaultdict(dict, _decode(state["saved_params"]))
    plugin.importances = defaultdict(dict, _decode(state["importances"]))


def _si(plugin: SynapticIntelligencePlugin):
    return {"ewc_data": _encode(plugin.ewc_data), "syn_data": _encode(plugin.syn_data)}


def _load_si(plugin: SynapticIntelligencePlugin, state, **context):
    plugin.ewc_data = _decode(state["ewc_data"])
    plugin.syn_data = _decode(state["syn_data"])


def _lwf(plugin: LwFPlugin):
    lwf = plugin.lwf
    return {
        "expcount": lwf.expcount,
        "prev_classes_by_task": {t: sorted(c) for t, c in lwf.prev_classes_by_task.items()},
        "prev_model": None if lwf.prev_model is None else lwf.prev_model.state_dict(),
        # LwF never switches its copy to eval mode: it was copied in training mode, and
        # BatchNorm behaves by that mode.
        "prev_model_training": lwf.prev_model is not None and lwf.prev_model.training,
    }


def _load_lwf(plugin: LwFPlugin, state, *, model, **context):
    lwf = plugin.lwf
    lwf.expcount = state["expcount"]
    lwf.prev_classes_by_task = defaultdict(
        set, {t: set(c) for t, c in state["prev_classes_by_task"].items()}
    )
    lwf.prev_model = None
    if state["prev_model"] is not None:  # taken after the last experience: today's shape
        lwf.prev_model = copy.deepcopy(model)
        lwf.prev_model.load_state_dict(state["prev_model"])
        lwf.prev_model.train(state["prev_model_training"])


def _replay(plugin: ReplayPlugin):
    return plugin.storage_policy.state_dict()


def _load_replay(plugin: ReplayPlugin, state, *, datasets, **context):
    plugin.storage_policy.load_state_dict(state, datasets=datasets)


ADAPTERS = {  # Avalanche plugin -> (state of, load state into)
    EWCPlugin: (_ewc, _load_ewc),
    SynapticIntelligencePlugin: (_si, _load_si),
    LwFPlugin: (_lwf, _load_lwf),
    ReplayPlugin: (_replay, _load_replay),
}


def _adapter(plugin):
    if isinstance(plugin, ReplayPlugin) and not hasattr(plugin.storage_policy, "state_dict"):
        raise ValueError(
            f"replay storage policy {type(plugin.storage_policy).__name__} cannot be "
            "checkpointed; use lifelong.plugins.IndexedExperienceBuffer"
        )
    for cls, pair in ADAPTERS.items():
        if isinstance(plugin, cls):
            return pair
    if callable(getattr(plugin, "state_dict", None)):
        return type(plugin).state_dict, type(plugin).load_state_dict
    return None


def plugin_states(plugins) -> list:
    """One entry per plugin: {"plugin": class name, "state": ...}, None if stateless."""
    out = []
    for plugin in plugins:
        pair = _adapter(plugin)
        out.append(
            None if pair is None else {"plugin": type(plugin).__name__, "state": pair[0](plugin)}
        )
    return out


def load_plugin_states(plugins, states: list, **context) -> None:
    """Inverse of ``plugin_states`` for the same list of plugins (same config)."""
    if len(plugins) != len(states):
        raise ValueError(f"checkpoint has {len(states)} plugin states for {len(plugins)} plugins")
    for plugin, saved in zip(plugins, states, strict=True):
        pair = _adapter(plugin)
        if saved is None or pair is None:
            if (saved is None) != (pair is None):
                raise ValueError(
                    f"checkpoint and run disagree on the state of {type(plugin).__name__}"
                )
            continue
        if saved["plugin"] != type(plugin).__name__:
            raise ValueError(
                f"checkpoint holds {saved['plugin']} where the run has {type(plugin).__name__}"
            )
        pair[1](plugin, saved["state"], **context)

"""A run's hyper-parameters for TensorBoard's hparams tab, with their real types.

Only what decides the result is listed: not where or how a run reports itself (``name``,
``runs_dir``, ``resume``, ``log.*``), nor ``imports``, ``device`` or ``dist.*``, and of the layer
option groups ``model.<layer>`` only the layer in use. ``stream.n_experiences`` is always
there, the stream's real length, even where the stream kind's default decided it. A value
left None (a default derived at run time) is left out: it has no value to compare.

The summaries are built from TensorBoard's own protos, not ``torch.utils.tensorboard``'s
``hparams()``: that one tests ``isinstance(v, (int, float))`` before ``bool``, so a boolean
would be filed as the number 0 or 1.
"""

from omegaconf import OmegaConf
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

from ..layers import LAYERS

# Top-level config keys that change how a run reports itself or where it runs, not what
# it computes.
NOT_HPARAMS = ("name", "runs_dir", "resume", "log", "imports", "device", "dist")
N_EXPERIENCES = "stream.n_experiences"

_TYPES = {
    bool: api_pb2.DATA_TYPE_BOOL,
    int: api_pb2.DATA_TYPE_FLOAT64,  # TensorBoard has no integer type
    float: api_pb2.DATA_TYPE_FLOAT64,
    str: api_pb2.DATA_TYPE_STRING,
}


def run_hparams(cfg, n_experiences: int) -> dict[str, bool | int | float | str]:
    """{dotted key: value} of the config's hyper-parameters; lists become their text."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain = {k: v for k, v in plain.items() if k not in NOT_HPARAMS}
    model = plain.get("model", {})
    for layer in set(LAYERS) - {model.get("ffn")}:
        model.pop(layer, None)  # the options of layers this run does not build
    flat: dict[str, bool | int | float | str] = {}

    def walk(node: dict, prefix: str):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, name + ".")
            elif isinstance(value, (bool, int, float, str)):
                flat[name] = value
            elif value is not None:
                flat[name] = str(value)

    walk(plain, "")
    flat[N_EXPERIENCES] = int(n_experiences)
    return dict(sorted(flat.items()))


def hparams_summaries(hparams: dict, metric_tags: list[str]) -> list[Summary]:
    """The experiment (hyper-parameter types and metric tags), session start (the values)
    and session end (success) summaries of one run, as the hparams plugin reads them.
    ``metric_tags`` name scalars the run writes."""
    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=name, type=_TYPES[type(value)])
            for name, value in hparams.items()
        ],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=t)) for t in metric_tags],
    )
    start = plugin_data_pb2.SessionStartInfo()
    for name, value in hparams.items():
        if isinstance(value, bool):  # before int: a bool is an int to isinstance
            start.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            start.hparams[name].number_value = value
        else:
            start.hparams[name].string_value = value
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS)
    return [
        _summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)),
        _summary(
            metadata.SESSION_START_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_start_info=start),
        ),
        _summary(
            metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)
        ),
    ]


def _summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    value = Summary.Value(
        tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR
    )
    return Summary(value=[value])

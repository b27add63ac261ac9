"""A fresh smoke run as TensorBoard shows it: the custom-scalars charts (one forgetting
curve per experience in one chart), tags that never equal the tags of Avalanche's standard
metrics, hyper-parameters with their real types, and PNGs that name what they show."""

import json
import re
from pathlib import Path

import pytest
import torch
from avalanche.evaluation.metrics import (
    accuracy_metrics,
    bwt_metrics,
    forgetting_metrics,
    loss_metrics,
)
from avalanche.logging import TensorboardLogger
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.custom_scalar import metadata as layout_metadata
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard_views import CustomScalars, events
from tiny_streams import one_thread
from torch import nn

from lifelong.config import load_config
from lifelong.experiment.build import build_stream_from_config
from lifelong.metrics import plots
from lifelong.metrics.tensorboard_layout import (
    AVERAGE_AND_FORGETTING,
    PER_EXPERIENCE,
    USAGE_PER_STAGE,
)
from lifelong.training.run import run

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "split_digits_task_il_smoke.yaml"
# Avalanche's loss metrics, which lifelong adds to every run under their own names.
AVALANCHE_LOSS = ("Loss_Exp/", "Loss_Stream/")


def _spy(monkeypatch, name: str, drawn: dict):
    """Keep every figure ``plots.<name>`` draws (the PNG writers call it by that name)."""
    draw = getattr(plots, name)

    def spy(*args, **kwargs):
        fig = draw(*args, **kwargs)
        drawn.setdefault(name, []).append(fig)
        return fig

    monkeypatch.setattr(plots, name, spy)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke run (its directory, config, metrics.json and the figures its PNGs hold)."""
    runs = tmp_path_factory.mktemp("runs")
    cfg = load_config(SMOKE, [f"runs_dir={runs}", "log.progress=false"])
    drawn: dict[str, list] = {}
    with one_thread(), pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("matrix_figure", "curves_figure", "usage_figure"):
            _spy(monkeypatch, name, drawn)
        run_dir = run(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return run_dir, cfg, metrics, drawn


@pytest.fixture(scope="module")
def avalanche_tags(smoke, tmp_path_factory):
    """The tags Avalanche's standard metrics write for the smoke run's stream: a tiny
    strategy with them and Avalanche's TensorboardLogger, trained on two experiences and
    evaluated on the test stream after each (forgetting and BWT need a second one)."""
    _, cfg, _, _ = smoke
    logdir = tmp_path_factory.mktemp("avalanche")
    spec = build_stream_from_config(cfg)
    torch.manual_seed(0)
    logger = TensorboardLogger(logdir)
    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        loss_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        bwt_metrics(experience=True, stream=True),
        loggers=[logger],
    )
    model = nn.Linear(spec.input_shape[0], spec.num_classes)
    strategy = Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        criterion=nn.CrossEntropyLoss(),
        train_mb_size=64,
        eval_mb_size=256,
        train_epochs=1,
        evaluator=evaluator,
        device="cpu",
    )
    with one_thread():
        for experience in list(spec.benchmark.train_stream)[:2]:
            strategy.train(experience)
            strategy.eval(spec.benchmark.test_stream)
    logger.writer.flush()
    tags = events(logdir).Tags()
    return set(tags["scalars"]) | set(tags["images"])


def _tags(run_dir: Path) -> set[str]:
    tags = events(run_dir).Tags()
    return set(tags["scalars"]) | set(tags["images"])


def test_no_lifelong_tag_equals_a_tag_of_avalanches_standard_metrics(smoke, avalanche_tags):
    run_dir, _, metrics, _ = smoke
    n = len(metrics["experience_names"])
    # The oracle does write the per-experience and stream accuracy of this stream.
    assert "Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000" in avalanche_tags
    assert any(t.startswith("Top1_Acc_Stream/eval_phase/test_stream") for t in avalanche_tags)
    assert "StreamForgetting/eval_phase/test_stream" in avalanche_tags
    ours = _tags(run_dir)
    lifelong = {t for t in ours if not t.startswith(AVALANCHE_LOSS)}
    assert lifelong and all(t.startswith("lifelong/") for t in lifelong)
    assert lifelong & avalanche_tags == set()
    # What lifelong does take from Avalanche keeps Avalanche's names.
    assert {t for t in avalanche_tags if t.startswith(AVALANCHE_LOSS)} <= ours
    # Experience ids are zero-padded, so the tags sort in experience order past 9.
    curves = sorted(t for t in lifelong if t.startswith("lifelong/Top1_Acc_Exp/"))
    assert [t.rsplit("/", 1)[1] for t in curves] == [f"Exp{e:03d}" for e in range(n)]


def test_layout_charts_forgetting_curves_averages_and_stage_usage(smoke):
    run_dir, _, metrics, _ = smoke
    n = len(metrics["experience_names"])
    dashboard = CustomScalars(run_dir.parent)
    (name,) = dashboard.runs
    charts = dashboard.charts()
    assert {PER_EXPERIENCE, AVERAGE_AND_FORGETTING, USAGE_PER_STAGE} <= set(charts)
    assert all("multiline" in chart for chart in charts.values())

    # (a) One series per experience, overlaid: exactly the per-experience accuracy tags
    # (task-IL: experience e has task label e), each with a point per evaluation.
    curves = dashboard.series(name, charts[PER_EXPERIENCE])
    expected = {
        f"lifelong/Top1_Acc_Exp/eval_phase/test_stream/Task{e:03d}/Exp{e:03d}" for e in range(n)
    }
    assert set(curves) == expected
    assert all([step for _, step, _ in points] == list(range(n + 1)) for points in curves.values())
    # (b) The stream's average accuracy and forgetting together.
    summaries = dashboard.series(name, charts[AVERAGE_AND_FORGETTING])
    assert set(summaries) == {
        "lifelong/Average_Accuracy/eval_phase/test_stream",
        "lifelong/Forgetting/eval_phase/test_stream",
    }
    # (c) Usage and KL / log N of every stage of every expert layer, over the stream.
    usage = dashboard.series(name, charts[USAGE_PER_STAGE])
    layers = metrics["expert_layers"]
    assert set(usage) == {
        f"lifelong/{metric}/eval_phase/test_stream/{layer}/stage{s}"
        for metric in ("ExpertUsage", "KL_Nonuniformity_Normalized")
        for layer, figures in layers.items()
        for s in range(len(figures["per_stage"]))
    }
    assert len(next(iter(layers.values()))["per_stage"]) == n  # a stage per experience
    # Every chart draws something: no empty chart on a classification run.
    assert all(dashboard.series(name, chart) for chart in charts.values())


def test_layout_is_written_when_the_writer_opens(smoke):
    run_dir, _, _, _ = smoke
    (path,) = run_dir.glob("events.out.tfevents.*")
    order = [
        value.tag
        for event in EventFileLoader(str(path)).Load()
        if event.HasField("summary")
        for value in event.summary.value
    ]
    assert order[0] == layout_metadata.CONFIG_SUMMARY_TAG
    assert order.count(layout_metadata.CONFIG_SUMMARY_TAG) == 1


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_hparams_are_hyper_parameters_with_their_types(smoke):
    run_dir, cfg, metrics, _ = smoke
    content = events(run_dir).PluginTagToContent("hparams")
    start = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    ).hparams
    experiment = hparams_metadata.parse_experiment_plugin_data(
        content[hparams_metadata.EXPERIMENT_TAG]
    )
    keys = set(start)
    for left_out in ("name", "runs_dir", "resume", "imports", "device"):
        assert left_out not in keys
    assert not any(k == "log" or k.startswith("log.") for k in keys)
    assert not any(k.startswith("model.moe.") for k in keys)  # a layer this run does not use
    # The number of experiences, though the config leaves it to the stream's default.
    assert "n_experiences" not in cfg.stream
    assert start["stream.n_experiences"].number_value == len(metrics["experience_names"])
    # Booleans are booleans, in the values and in the declared types.
    types = {info.name: info.type for info in experiment.hparam_infos}
    assert set(types) == keys
    booleans = [
        k for k, v in _leaves(OmegaConf.to_container(cfg, resolve=True)) if isinstance(v, bool)
    ]
    booleans = [k for k in booleans if k in keys]
    assert {"growth.freeze_query", "train.eval_initial", "model.stem"} <= set(booleans)
    for key in booleans:
        assert start[key].WhichOneof("kind") == "bool_value", key
        assert types[key] == api_pb2.DATA_TYPE_BOOL, key
    assert start["train.lr"].number_value == pytest.approx(cfg.train.lr)
    assert start["train.strategy"].string_value == cfg.train.strategy
    # The final figures are the hparams tab's metrics, and are logged as scalars.
    metric_tags = {info.name.tag for info in experiment.metric_infos}
    assert "lifelong/final/average_accuracy" in metric_tags
    assert metric_tags <= set(events(run_dir).Tags()["scalars"])


def test_pngs_name_experiences_and_metric_at_150_dpi(smoke):
    run_dir, _, metrics, drawn = smoke
    names = metrics["experience_names"]
    (matrix,) = drawn["matrix_figure"]
    ax, bar = matrix.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert bar.get_ylabel().startswith("accuracy") and ax.get_title()
    (curves,) = drawn["curves_figure"]
    assert curves.axes[0].get_ylabel() == "accuracy" and curves.axes[0].get_title()
    assert [t.get_text() for t in curves.legends[0].get_texts()][: len(names)] == names
    (usage,) = drawn["usage_figure"]
    assert usage.axes[0].get_title()
    boundaries = [line for line in usage.axes[0].lines if line.get_color() == "white"]
    assert len(boundaries) == len(names) - 1  # one growth stage per later experience
    for png in run_dir.glob("*.png"):
        with Image.open(png) as image:
            assert min(image.info["dpi"]) >= 149.5, png.name


def test_experience_names_are_in_tensorboard(smoke):
    run_dir, _, metrics, _ = smoke
    acc = events(run_dir)
    (text,) = [t for t in acc.Tags()["tensors"] if t.startswith("lifelong/experience_names")]
    table = acc.Tensors(text)[-1].tensor_proto.string_val[0].decode()
    for e, name in enumerate(metrics["experience_names"]):
        assert re.search(rf"\|\s*Exp{e:03d}\s*\|\s*{re.escape(name)}\s*\|", table)

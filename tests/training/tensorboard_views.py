"""What TensorBoard shows of a log directory, read through TensorBoard's own code: its
event multiplexer and data provider, and the custom-scalars plugin's handlers (the
functions behind its HTTP routes), so a layout is checked as the dashboard would draw it."""

import json
import warnings
from pathlib import Path

from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins import base_plugin

with warnings.catch_warnings():  # TensorBoard's vendored html5lib warns on import
    warnings.simplefilter("ignore", DeprecationWarning)
    from tensorboard.plugins.custom_scalar.custom_scalars_plugin import CustomScalarsPlugin
    from tensorboard.plugins.scalar.scalars_plugin import ScalarsPlugin


def events(run_dir: Path) -> EventAccumulator:
    """Every event of one run directory, nothing sampled away."""
    sizes = {"scalars": 0, "images": 0, "tensors": 0}
    acc = EventAccumulator(str(run_dir), size_guidance=sizes)
    acc.Reload()
    return acc


class CustomScalars:
    """The custom-scalars dashboard of the runs under ``logdir``."""

    def __init__(self, logdir: Path):
        mux = plugin_event_multiplexer.EventMultiplexer()
        mux.AddRunsFromDirectory(str(logdir))
        mux.Reload()
        tb_context = base_plugin.TBContext(
            logdir=str(logdir),
            multiplexer=mux,
            data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir)),
            plugin_name_to_instance={},
        )
        # The custom-scalars plugin fetches each series through the scalars plugin.
        tb_context.plugin_name_to_instance["scalars"] = ScalarsPlugin(tb_context)
        self._plugin = CustomScalarsPlugin(tb_context)
        self._context = context.RequestContext()
        self.runs = sorted(mux.Runs())

    def layout(self) -> dict:
        """The merged layout: {"category": [{"title", "chart": [...]}]} ({} without one)."""
        layout = self._plugin.layout_impl(self._context, experiment="")
        return json.loads(layout) if isinstance(layout, str) else layout  # JSON text

    def charts(self) -> dict[str, dict]:
        """{chart title: chart} over every category."""
        return {
            chart["title"]: chart
            for category in self.layout().get("category", [])
            for chart in category["chart"]
        }

    def series(self, run: str, chart: dict) -> dict[str, list]:
        """{tag: [[wall time, step, value], ...]} of every series a Multiline chart draws."""
        out = {}
        for regex in chart["multiline"]["tag"]:
            body = self._plugin.scalars_impl(self._context, run, regex, experiment="")
            assert body["regex_valid"], regex
            out.update(body["tag_to_events"])
        return out

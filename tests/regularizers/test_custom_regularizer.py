"""The examples of docs/regularizers.md, run exactly as written there."""

import contextlib
import io
import re
from pathlib import Path

import torch
from tiny_regularized import PenaltyRecorder, peer_model
from tiny_streams import naive, one_thread, tiny_benchmark
from torch import nn

from lifelong.regularizers import RegularizationPlugin, build_regularizer

DOC = Path(__file__).resolve().parents[2] / "docs" / "regularizers.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def custom_example() -> dict:
    """The namespace left by the first python block under "Writing your own regulariser"."""
    section = DOC.read_text().split("## Writing your own regulariser", 1)[1]
    namespace: dict = {}
    exec(python_blocks(section)[0], namespace)  # noqa: S102 - our own documentation
    return namespace


def test_l1_example_is_zero_at_the_anchor_and_the_absolute_distance_away():
    reg = custom_example()["L1Anchor"]()
    model = nn.Linear(2, 2)
    out = torch.zeros(1, 2)
    assert reg.penalty(model, x=None, task_labels=None, output=out).item() == 0.0
    reg.after_experience(model, data=None)
    assert reg.penalty(model, x=None, task_labels=None, output=out).item() == 0.0
    with torch.no_grad():
        model.weight[0, 1] -= 0.5
        model.bias[0] += 0.25
    assert reg.penalty(model, x=None, task_labels=None, output=out).item() == 0.75


def test_l1_example_trains_next_to_ewc_with_growth():

    # The second block builds the plugin from the first block's class.
    namespace = custom_example()
    namespace.update(RegularizationPlugin=RegularizationPlugin, build_regularizer=build_regularizer)
    section = DOC.read_text().split("## Writing your own regulariser", 1)[1]
    exec(python_blocks(section)[1], namespace)  # noqa: S102
    plugin = namespace["plugin"]
    assert [type(r).__name__ for r in plugin.regularizers] == ["L1Anchor", "EWCRegularizer"]
    model = peer_model()
    recorder = PenaltyRecorder(plugin)
    strategy = naive(model, epochs=2, plugins=[plugin, recorder])
    with one_thread():
        for exp in tiny_benchmark().train_stream:
            strategy.train(exp)
    assert model.ffn.layer.num_stages == 3
    assert all(p == 0 for p in recorder.penalties[0])
    assert max(recorder.penalties[1]) > 0 and max(recorder.penalties[2]) > 0


def test_opening_command_runs_and_prints_a_row_per_experience():
    block = re.search(r"```bash\npython - <<'EOF'\n(.*?)\nEOF\n```", DOC.read_text(), re.S)
    assert block, "docs/regularizers.md must open with a python heredoc"
    out = io.StringIO()
    with one_thread(), contextlib.redirect_stdout(out):
        exec(block.group(1), {"__name__": "__main__"})  # noqa: S102
    rows = [line for line in out.getvalue().splitlines() if line.startswith("after ")]
    assert len(rows) == 3

"""train.precision=bf16: every training and evaluation forward runs under bf16 autocast,
the loss in float32, and a run ends close to its float32 twin."""

import json
from pathlib import Path

import torch

from lifelong.config import load_config
from lifelong.training.run import run

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "text_domains_smoke.yaml"
QUIET = ["log.progress=false", "log.tensorboard=false", "log.png=false"]


def test_bf16_forwards_run_under_autocast_and_end_close_to_fp32(tmp_path, monkeypatch):
    dtypes = set()
    original = torch.nn.Linear.forward

    def recording(self, x):
        out = original(self, x)
        dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", recording)
    results = {}
    for precision in ("fp32", "bf16"):
        dtypes.clear()
        cfg = load_config(
            CONFIG,
            [f"train.precision={precision}", f"runs_dir={tmp_path}", f"name={precision}", *QUIET],
        )
        results[precision] = json.loads((run(cfg) / "metrics.json").read_text())["perplexity"]
        expected = torch.bfloat16 if precision == "bf16" else torch.float32
        assert expected in dtypes  # the model's Linear layers ran in that precision
    assert abs(results["bf16"] - results["fp32"]) / results["fp32"] < 0.01

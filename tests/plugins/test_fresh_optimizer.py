"""train.reset_optimizer=true: every experience's first optimizer step finds no state
(Adam's moments and step counts start again), where by default the state carries over."""

import math
from pathlib import Path

import pytest

from lifelong.config import load_config
from lifelong.optim import LazyAdamW
from lifelong.training.run import run

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "text_domains_smoke.yaml"
QUIET = ["log.progress=false", "log.tensorboard=false", "log.png=false"]


@pytest.mark.parametrize("reset", [True, False])
def test_each_experience_starts_adam_again(tmp_path, monkeypatch, reset):
    counts = []  # per optimizer step: the largest Adam step count in the state before it
    step = LazyAdamW.step

    def recording_step(self, *args, **kwargs):
        steps = [float(s["step"]) for s in self.state.values() if "step" in s]
        counts.append(max(steps, default=0.0))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(LazyAdamW, "step", recording_step)
    overrides = [f"train.reset_optimizer={str(reset).lower()}", "model.freeze_after_first=[]"]
    cfg = load_config(CONFIG, [*overrides, f"runs_dir={tmp_path}", "name=r", *QUIET])
    run(cfg)
    per_exp = math.ceil(cfg.stream.train_sequences / cfg.train.batch_size) * cfg.train.epochs
    assert len(counts) == 4 * per_exp
    if reset:  # the step count runs 0, 1, ... within each experience
        assert counts == list(map(float, range(per_exp))) * 4
    else:  # the shared parameters' count goes on across experiences
        assert counts == list(map(float, range(4 * per_exp)))

"""train.schedule=cosine: every optimizer step of every experience, grown parameters
included, uses the warmed-up, half-cosine rate, and each experience starts again."""

import math
from pathlib import Path

from lifelong.config import load_config
from lifelong.optim import LazyAdamW
from lifelong.plugins import LRSchedulePlugin
from lifelong.training.run import run

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "text_domains_smoke.yaml"
QUIET = ["log.progress=false", "log.tensorboard=false", "log.png=false"]


def expected_rates(lr: float, steps: int, warmup: int) -> list[float]:
    """Written out: warmup steps rise linearly to lr, then lr/2 (1 + cos(pi p)) with p
    going from 0 in equal parts of the remaining steps."""
    rise = [lr * (i + 1) / (warmup + 1) for i in range(warmup)]
    rest = steps - warmup
    return rise + [lr / 2 * (1 + math.cos(math.pi * j / rest)) for j in range(rest)]


def test_cosine_schedule_sets_every_group_each_step_and_restarts_per_experience(
    tmp_path, monkeypatch
):
    steps, groups, totals, after = [], [], [], []
    step = LazyAdamW.step

    def recording_step(self, *args, **kwargs):
        rates = {g["lr"] for g in self.param_groups}
        assert len(rates) == 1, rates  # grown groups follow the schedule too
        steps.append(rates.pop())
        groups.append(sum(len(g["params"]) for g in self.param_groups))
        return step(self, *args, **kwargs)

    begin, end = LRSchedulePlugin.before_training_exp, LRSchedulePlugin.after_training_exp

    def recording_begin(self, strategy, *a, **k):
        begin(self, strategy, *a, **k)
        totals.append(self._total)

    def recording_end(self, strategy, *a, **k):
        end(self, strategy, *a, **k)
        after.append({g["lr"] for g in strategy.optimizer.param_groups})

    monkeypatch.setattr(LazyAdamW, "step", recording_step)
    monkeypatch.setattr(LRSchedulePlugin, "before_training_exp", recording_begin)
    monkeypatch.setattr(LRSchedulePlugin, "after_training_exp", recording_end)
    overrides = ["train.schedule=cosine", "train.warmup=0.25", "train.epochs=2", "train.lr=0.004"]
    cfg = load_config(CONFIG, [*overrides, f"runs_dir={tmp_path}", "name=cos", *QUIET])
    run(cfg)

    per_exp = 2 * math.ceil(cfg.stream.train_sequences / cfg.train.batch_size)  # 2 epochs
    assert totals == [per_exp] * 4  # four domains
    expected = expected_rates(0.004, per_exp, per_exp // 4) * 4
    assert len(steps) == len(expected)
    assert max(abs(a - b) for a, b in zip(steps, expected, strict=True)) < 1e-12
    assert groups[-1] > groups[0]  # growth added parameters, and they were scheduled
    assert after == [{0.004}] * 4  # a checkpoint after an experience holds the base rate

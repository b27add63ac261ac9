"""train.ema=β: after every experience the trained weights are the moving average of the
iterates that experience produced, restarted per experience, and every plugin that reads
the model when an experience ends (the L2 anchor here) sees the average."""

from pathlib import Path

import pytest
import torch

from lifelong.config import ConfigError, load_config
from lifelong.optim import LazyAdamW
from lifelong.plugins import WeightAveragePlugin
from lifelong.regularizers.l2 import L2Regularizer
from lifelong.training.run import run

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "text_domains_smoke.yaml"
QUIET = ["log.progress=false", "log.tensorboard=false", "log.png=false"]


def literal_average(start: list[torch.Tensor], iterates: list[list[torch.Tensor]], beta):
    """Written out, one tensor at a time: a ← β a + (1 − β) w for each step's weights w."""
    average = [t.clone() for t in start]
    for weights in iterates:
        average = [beta * a + (1 - beta) * w for a, w in zip(average, weights, strict=True)]
    return average


def test_each_experience_ends_at_the_average_of_its_iterates(tmp_path, monkeypatch):
    beta = 0.6  # far from 0 and 1, so a swap to the last iterate or to the start fails
    steps: list[tuple[list, list, list]] = []  # per step: params, before, after
    anchors: list[dict] = []
    step = LazyAdamW.step

    def recording_step(self, *args, **kwargs):
        params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        before = [p.detach().clone() for p in params]
        out = step(self, *args, **kwargs)
        steps.append((params, before, [p.detach().clone() for p in params]))
        return out

    after_experience = L2Regularizer.after_experience

    def recording_anchor(self, model, data):
        after_experience(self, model, data)
        anchors.append({k: v.clone() for k, v in self.anchor.items()})

    monkeypatch.setattr(LazyAdamW, "step", recording_step)
    monkeypatch.setattr(L2Regularizer, "after_experience", recording_anchor)
    overrides = [
        f"train.ema={beta}",
        "train.epochs=2",
        "model.freeze_after_first=[]",  # the shared parameters train in every experience
        "train.regularizer=l2",
    ]
    cfg = load_config(CONFIG, [*overrides, f"runs_dir={tmp_path}", "name=ema", *QUIET])
    models = []
    before_update = WeightAveragePlugin.before_update

    def keeping_model(self, strategy, *a, **k):
        models.append(strategy.model)
        before_update(self, strategy, *a, **k)

    monkeypatch.setattr(WeightAveragePlugin, "before_update", keeping_model)
    run(cfg)
    model = models[0]
    names = {id(p): n for n, p in model.named_parameters()}

    per_exp = len(steps) // 4  # four domains, the same number of batches in each
    assert per_exp * 4 == len(steps) and per_exp >= 4
    for exp in range(4):
        chunk = steps[exp * per_exp : (exp + 1) * per_exp]
        params, start, _ = chunk[0]
        expected = literal_average(start, [after for _, _, after in chunk], beta)
        # The next experience starts from the average (the first step's "before" weights),
        # and the L2 anchor taken as this one ended is that average too.
        anchor = anchors[exp]
        checked = 0
        last = chunk[-1][2]
        if exp < 3:  # the next experience's first step starts from here
            nxt_params, nxt_before, _ = steps[(exp + 1) * per_exp]
            nxt = {id(p): w for p, w in zip(nxt_params, nxt_before, strict=True)}
        for i, (p, want) in enumerate(zip(params, expected, strict=True)):
            name = names[id(p)]
            if not torch.equal(want, start[i]):  # a tensor that moved is averaged, not last
                assert not torch.equal(want, last[i]), name
            if name in anchor:
                torch.testing.assert_close(anchor[name], want, rtol=1e-5, atol=1e-6)
                checked += 1
            if exp < 3 and id(p) in nxt:
                torch.testing.assert_close(nxt[id(p)], want, rtol=1e-5, atol=1e-6)
        assert checked > 0  # the shared parameters were among those averaged


def test_frozen_parameters_are_left_alone():
    """The plugin averages what trains and never writes a frozen tensor."""
    model = torch.nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    frozen = model.bias.detach().clone()
    plugin = WeightAveragePlugin(0.5)

    class Strategy:  # the attributes the plugin reads
        pass

    strategy = Strategy()
    strategy.model = model
    plugin.before_training_exp(strategy)
    start = model.weight.detach().clone()
    plugin.before_update(strategy)
    with torch.no_grad():
        model.weight.add_(2.0)
        model.bias.add_(5.0)  # moved behind the plugin's back: not its to average
    plugin.after_update(strategy)
    plugin.after_training_exp(strategy)
    torch.testing.assert_close(model.weight, start + 1.0)  # 0.5 start + 0.5 (start + 2)
    torch.testing.assert_close(model.bias, frozen + 5.0)


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1"])
def test_decay_outside_zero_one_is_refused(value):
    with pytest.raises(ConfigError, match=r"train\.ema"):
        load_config(CONFIG, [f"train.ema={value}"])

"""Generative distillation: the sampler against toy language models whose predictions are
known, the penalty against a hand-computed KL on a real grown byte LM, its state, and the
config check."""

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lifelong.config import ConfigError, load_config
from lifelong.experiment import build_model, build_stream_from_config
from lifelong.models import GrowingExperts
from lifelong.models.growing import routed_as_trained
from lifelong.regularizers import ExperienceData, GenerativeDistillation, build_regularizer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
V = 256


class NextByte(nn.Module):
    """Predicts byte (x_t + 1) mod 256 after x_t, with certainty."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):  # (B, T) -> (B, T, V)
        return torch.where(nn.functional.one_hot((x + 1) % V, V).bool(), 50.0, -50.0)


class Fixed(nn.Module):
    """Predicts the same distribution ``probs`` after any prefix."""

    def __init__(self, probs):
        super().__init__()
        self.logits = nn.Parameter(probs.log())

    def forward(self, x):
        return self.logits.expand(*x.shape, V)


def test_each_byte_is_drawn_from_the_prediction_after_the_bytes_before_it():
    reg = GenerativeDistillation(samples=3)
    reg.previous = NextByte()
    histogram = torch.zeros(V, dtype=torch.float64)
    histogram[253] = 1.0  # every window starts with byte 253
    out = reg._sample(0, histogram, length=6)
    assert out.tolist() == [[253, 254, 255, 0, 1, 2]] * 3


def test_samples_follow_the_stage_s_distribution_at_temperature_one():
    probs = torch.full((V,), 1e-6)
    probs[[10, 20, 30]] = torch.tensor([0.5, 0.3, 0.2])
    probs /= probs.sum()
    reg = GenerativeDistillation(samples=2000)
    reg.previous = Fixed(probs)
    out = reg._sample(0, torch.ones(V, dtype=torch.float64), length=4)
    later = out[:, 1:].flatten()  # 6000 draws from probs
    for byte, p in ((10, 0.5), (20, 0.3), (30, 0.2)):
        assert abs((later == byte).double().mean().item() - p) < 0.03
    assert set(out[:, 0].tolist()) != {10, 20, 30}  # the first byte is the histogram's


def grown_lm():
    """The smoke label-free byte LM after training experience 0 (by hand) and growing for
    experience 1: stage 0 frozen, stage 1 open."""
    cfg = load_config(CONFIGS / "text_domains_no_labels_smoke.yaml")
    torch.manual_seed(0)
    model = build_model(cfg, build_stream_from_config(cfg))
    layers = [m for m in model.modules() if isinstance(m, GrowingExperts)]

    class Exp:
        def __init__(self, e):
            self.current_experience = e

    model.train()
    for m in layers:
        m.adaptation(Exp(0))
    return model, layers, Exp


def ended(windows):
    data = TensorDataset(windows, windows, torch.zeros(len(windows), dtype=torch.long))
    return ExperienceData(data, None, torch.device("cpu"), 16, task_labels=(0,))


def kl_by_hand(current, previous, temperature):
    p = torch.softmax(previous / temperature, -1)
    log_q = torch.log_softmax(current / temperature, -1)
    return (p * (p.log() - log_q)).sum(-1).mean() * temperature**2


def test_penalty_is_the_kl_of_an_old_stage_on_its_own_samples():
    model, layers, Exp = grown_lm()
    windows = torch.randint(97, 123, (32, 32), generator=torch.Generator().manual_seed(1))
    reg = build_regularizer("gen_distill", samples=16, batch=4, temperature=2.0)
    x, t = windows[:4], torch.zeros(4, dtype=torch.long)
    assert reg.penalty(model, x=x, task_labels=t, output=model(x, t)).item() == 0.0
    reg.after_experience(model, ended(windows))
    pool = reg.pools[0]
    assert pool.shape == (16, 32) and list(reg.pools) == [0]
    for m in layers:
        m.adaptation(Exp(1))  # grows: stage 0 is frozen now
    assert reg.penalty(model, x=x, task_labels=t, output=model(x, t)).item() == pytest.approx(
        0.0, abs=1e-6
    )  # nothing moved since the copy
    with torch.no_grad():
        model.tok.weight.add_(0.5 * torch.randn_like(model.tok.weight))  # a shared parameter
    draws = torch.Generator()
    draws.set_state(reg.generator.get_state())
    value = reg.penalty(model, x=x, task_labels=t, output=model(x, t))
    stage = [0][torch.randint(1, (1,), generator=draws).item()]
    chosen = pool[torch.randint(len(pool), (4,), generator=draws)]
    with torch.no_grad(), routed_as_trained(model, stage):
        current = model(chosen, t)
    with torch.no_grad(), routed_as_trained(reg.previous, stage):
        previous = reg.previous(chosen, t)
    assert value.item() > 1e-3
    torch.testing.assert_close(value.detach(), kl_by_hand(current, previous, 2.0))
    value.backward()
    assert model.tok.weight.grad is not None and model.tok.weight.grad.abs().sum() > 0
    old = [p for m in layers for p in (m.layer.down[0], m.layer.up[0])]
    assert all(p.grad is None for p in old)  # the old stage's experts stay frozen


def test_the_replayed_forward_adds_no_router_mass():
    """The distillation forward runs in training mode on an old stage's own writing; the
    mass that ranks experts for upcycling counts the new experience's data only."""
    model, layers, Exp = grown_lm()
    windows = torch.randint(97, 123, (32, 32), generator=torch.Generator().manual_seed(1))
    reg = build_regularizer("gen_distill", samples=16, batch=4, temperature=2.0)
    reg.after_experience(model, ended(windows))
    for m in layers:
        m.adaptation(Exp(1))
    model.train()
    x, t = windows[:4], torch.zeros(4, dtype=torch.long)
    output = model(x, t)  # the new experience's forward: it adds mass
    masses = [m.layer.router_mass.clone() for m in layers]
    assert all(mass.sum() > 0 for mass in masses)
    reg.penalty(model, x=x, task_labels=t, output=output).backward()
    after = [m.layer.router_mass for m in layers]
    assert all(torch.equal(a, b) for a, b in zip(after, masses, strict=True))


def test_state_round_trips_through_a_safe_load(tmp_path):
    model, layers, Exp = grown_lm()
    windows = torch.randint(0, V, (16, 32), generator=torch.Generator().manual_seed(2))
    reg = GenerativeDistillation(samples=8, batch=4)
    reg.after_experience(model, ended(windows))
    torch.save(reg.state_dict(), tmp_path / "state.pt")  # as a checkpoint: before growing
    restored = GenerativeDistillation()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True), model=model)
    for m in layers:
        m.adaptation(Exp(1))
    x, t = windows[:4], torch.zeros(4, dtype=torch.long)
    with torch.no_grad():
        model.tok.weight.add_(0.1)
    expected = reg.penalty(model, x=x, task_labels=t, output=model(x, t))
    torch.testing.assert_close(restored.penalty(model, x=x, task_labels=t, output=None), expected)


@pytest.mark.parametrize(
    "config, overrides",
    [
        ("split_digits_class_il_smoke.yaml", []),  # a classifier has no text to write
        ("text_domains_smoke.yaml", ["growth.routing=task_aware"]),
    ],
)
def test_config_without_an_inferring_language_model_is_refused(config, overrides):
    with pytest.raises(ConfigError, match="gen_distill samples each stage's own text"):
        load_config(CONFIGS / config, ["train.regularizer=gen_distill", *overrides])


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="samples"):
        GenerativeDistillation(samples=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerativeDistillation(temperature=0.0)

"""CrossEntropy: the literal formula of label smoothing where a gradient is taken, the
plain cross-entropy under no_grad (evaluation), and the config key that sets it."""

import math
from pathlib import Path

import pytest
import torch

from lifelong.config import ConfigError, load_config
from lifelong.experiment import build_experiment
from lifelong.models import CrossEntropy

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "text_domains_smoke.yaml"


def literal(logits: torch.Tensor, targets: torch.Tensor, eps: float) -> float:
    """Mean over predictions of -Σ_c q_c log p_c with q = (1 - ε)·onehot + ε / C,
    one prediction at a time (Szegedy et al. 2016, §7)."""
    rows, ys = logits.reshape(-1, logits.shape[-1]).tolist(), targets.reshape(-1).tolist()
    total = 0.0
    for row, y in zip(rows, ys, strict=True):
        log_z = math.log(sum(math.exp(v) for v in row))
        log_p = [v - log_z for v in row]
        q = [eps / len(row) + (1 - eps) * (c == y) for c in range(len(row))]
        total -= sum(qc * lp for qc, lp in zip(q, log_p, strict=True))
    return total / len(ys)


@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 6)])  # a byte LM's (B, T, V), a classifier's
def test_training_loss_is_the_smoothed_target(shape):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, shape[-1], shape[:-1], generator=g)
    loss = CrossEntropy(label_smoothing=0.2)(logits, targets)
    assert loss.item() == pytest.approx(literal(logits.detach(), targets, 0.2), rel=1e-12)
    assert loss.item() != pytest.approx(literal(logits.detach(), targets, 0.0), rel=1e-3)
    loss.backward()  # and it trains: the smoothed target's gradient
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_evaluation_loss_stays_plain():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 8, 11, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 11, (2, 8), generator=g)
    with torch.no_grad():  # as Avalanche evaluates
        loss = CrossEntropy(label_smoothing=0.3)(logits, targets)
    assert loss.item() == pytest.approx(literal(logits, targets, 0.0), rel=1e-12)


def test_the_config_key_sets_it_and_refuses_nonsense():
    cfg = load_config(CONFIG, ["train.label_smoothing=0.1", "log.tensorboard=false"])
    criterion = build_experiment(cfg, metrics=False).criterion
    assert isinstance(criterion, CrossEntropy) and criterion.label_smoothing == 0.1
    assert build_experiment(load_config(CONFIG), metrics=False).criterion.label_smoothing == 0
    with pytest.raises(ConfigError, match=r"train\.label_smoothing=1\.0 must be"):
        load_config(CONFIG, ["train.label_smoothing=1"])

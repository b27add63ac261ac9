"""Output distillation toward the previous model, for (B, C) and (B, T, V) outputs."""

import pytest
import torch
from avalanche.models import MultiTaskModule
from avalanche.models.dynamic_modules import avalanche_model_adaptation
from tiny_regularized import peer_model
from tiny_streams import tiny_benchmark
from torch import nn
from torch.nn import functional as F

from lifelong.regularizers import DistillationRegularizer, ExperienceData

T = 2.0


def kl_by_hand(current, previous, temperature):
    """T²·mean over rows of Σ_v p_v (log p_v - log q_v), p = softmax(prev/T), q = softmax(cur/T)."""
    p = torch.softmax(previous / temperature, dim=-1)
    log_q = torch.log_softmax(current / temperature, dim=-1)
    per_row = (torch.special.xlogy(p, p) - p * log_q).sum(-1)  # 0·log 0 = 0 (masked classes)
    return per_row.mean() * temperature**2


def ended(labels=(0,)):
    return ExperienceData(None, None, torch.device("cpu"), 1, task_labels=tuple(labels))


class TokenModel(MultiTaskModule):
    """(B, T) tokens -> (B, T, V) logits; ignores the task labels."""

    def __init__(self, vocab=5):
        super().__init__()
        self.emb = nn.Embedding(vocab, vocab)

    def forward(self, x, task_labels=None):
        return self.emb(x)


def test_classification_penalty_is_zero_at_the_anchor_and_the_kl_away():
    torch.manual_seed(0)
    model, reg = nn.Linear(4, 3), DistillationRegularizer(temperature=T)
    x, t = torch.randn(6, 4), torch.zeros(6, dtype=torch.long)
    assert reg.penalty(model, x=x, task_labels=t, output=model(x)).item() == 0.0
    reg.after_experience(model, ended())
    assert reg.penalty(model, x=x, task_labels=t, output=model(x)).item() == pytest.approx(
        0, abs=1e-7
    )
    previous = model(x).detach()
    with torch.no_grad():
        model.weight.add_(torch.randn(3, 4))
    out = model(x)
    value = reg.penalty(model, x=x, task_labels=t, output=out)
    assert value.item() > 0.01
    torch.testing.assert_close(value, kl_by_hand(out, previous, T))
    direct = F.kl_div(
        F.log_softmax(out / T, -1), F.softmax(previous / T, -1), reduction="batchmean"
    )
    torch.testing.assert_close(value, direct * T**2)


def test_language_model_penalty_averages_over_every_token():
    torch.manual_seed(0)
    model, reg = TokenModel(), DistillationRegularizer(temperature=T)
    x, t = torch.randint(0, 5, (3, 7)), torch.zeros(3, dtype=torch.long)
    reg.after_experience(model, ended())
    previous = model(x).detach()  # (3, 7, 5)
    with torch.no_grad():
        model.emb.weight.add_(torch.randn(5, 5))
    out = model(x)
    value = reg.penalty(model, x=x, task_labels=t, output=out)
    torch.testing.assert_close(value, kl_by_hand(out.reshape(21, 5), previous.reshape(21, 5), T))


def test_the_copy_is_frozen_and_independent():
    model, reg = nn.Linear(2, 2), DistillationRegularizer()
    reg.after_experience(model, ended())
    with torch.no_grad():
        model.weight.zero_()
    assert not torch.equal(reg.previous.weight, model.weight)
    assert not reg.previous.training
    assert not any(p.requires_grad for p in reg.previous.parameters())


def test_previous_labels_distil_through_old_task_heads():
    """Multi-head task-IL: the copy has no head for the new task, so the outputs under the
    old task labels are compared (Li & Hoiem); with the current labels it cannot run."""
    model = peer_model()
    bm = tiny_benchmark()
    avalanche_model_adaptation(model, bm.train_stream[0])  # head 0, PEER stage 0
    with torch.no_grad():  # as if trained: a new head starts at zero, every logit equal
        model.head.heads["0"].weight.normal_()
    reg = DistillationRegularizer(temperature=T, labels="previous")
    reg.after_experience(model, ended([0]))
    avalanche_model_adaptation(model, bm.train_stream[1])  # head 1, PEER stage 1
    with torch.no_grad():
        model.stem[1].weight.add_(0.3)  # the shared stem drifts
    assert model.ffn.layer.num_stages == 2 and reg.previous.ffn.layer.num_stages == 1
    x, t = torch.randn(5, 10), torch.ones(5, dtype=torch.long)
    value = reg.penalty(model, x=x, task_labels=t, output=model(x, t))
    old = torch.zeros(5, dtype=torch.long)
    torch.testing.assert_close(value, kl_by_hand(model(x, old), reg.previous(x, old), T))
    assert value.item() > 0
    current = DistillationRegularizer(temperature=T, labels="current")
    current.after_experience(reg.previous, ended([0]))
    with pytest.raises(ValueError, match="no head for task label 1"):
        current.penalty(model, x=x, task_labels=t, output=model(x, t))


def test_distill_rejects_bad_options():
    with pytest.raises(ValueError, match="labels='old'"):
        DistillationRegularizer(labels="old")
    with pytest.raises(ValueError, match="temperature=0"):
        DistillationRegularizer(temperature=0)

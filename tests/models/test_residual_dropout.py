"""model.dropout: residual dropout drops units of each block's branch outputs while
training and is the identity in evaluation; at 0 the model is exactly as without it."""

from pathlib import Path

import pytest
import torch

from lifelong.config import ConfigError, load_config
from lifelong.experiment.models import build_transformer
from lifelong.models.transformer import Block

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "text_domains_smoke.yaml"


def model(dropout: float):
    torch.manual_seed(0)
    cfg = load_config(CONFIG, [f"model.dropout={dropout}", "model.ffn=dense"])
    return build_transformer(cfg, seq_len=16)


def test_evaluation_ignores_dropout_and_training_applies_it():
    x = torch.randint(0, 256, (3, 16))
    labels = torch.zeros(3, dtype=torch.long)
    plain, dropped = model(0.0).eval(), model(0.5).eval()
    assert torch.equal(plain(x, labels), dropped(x, labels))  # same draws, same weights
    dropped.train()
    torch.manual_seed(1)
    first = dropped(x, labels)
    assert not torch.equal(first, plain(x, labels))
    assert not torch.equal(first, dropped(x, labels))  # a new mask each pass


def test_a_block_drops_its_branches_at_rate_p():
    """With every branch output a constant c, the residual gain is c/(1-p) or 0 per unit,
    at the rate p, as inverted dropout (Srivastava et al. 2014) defines it."""
    dim, p = 64, 0.25

    class Nothing(torch.nn.Module):  # an FFN branch that adds nothing
        def forward(self, h, task_labels):
            return torch.zeros_like(h)

    block = Block(dim, 4, Nothing(), dropout=p).train()
    block.attn.forward = lambda h: torch.ones_like(h)  # the attention branch gives 1
    torch.manual_seed(0)
    out = block(torch.zeros(50, 20, dim), None)
    kept = out != 0
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / (1 - p)))
    assert abs(1 - kept.float().mean().item() - p) < 0.02


@pytest.mark.parametrize("value", ["1", "-0.1", "1.5"])
def test_dropout_outside_zero_one_is_refused(value):
    with pytest.raises(ConfigError, match=r"model\.dropout"):
        load_config(CONFIG, [f"model.dropout={value}"])

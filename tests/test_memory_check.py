"""The memory check counts what the real model holds, and moves no random generator."""

from pathlib import Path

import torch

from lifelong.config import load_config
from lifelong.experiment import build_model, build_stream_from_config
from lifelong.experiment.memory import model_bytes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_model_bytes_equal_a_count_on_the_real_model_and_leave_the_rng_alone():
    for config in ("text_domains_smoke.yaml", "split_digits_class_il_smoke.yaml"):
        cfg = load_config(CONFIGS / config)
        spec = build_stream_from_config(cfg)
        torch.manual_seed(0)
        before = torch.get_rng_state()
        counted = model_bytes(cfg, spec)
        assert torch.equal(torch.get_rng_state(), before)
        model = build_model(cfg, spec)
        tensors = [*model.parameters(), *model.buffers()]
        weights = sum(t.numel() * t.element_size() for t in tensors)
        trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
        assert counted == weights + 2 * trainable

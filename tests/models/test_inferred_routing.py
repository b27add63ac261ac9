"""Inferred routing in whole models: causal for a language model, end to end for class-IL."""

import json
from pathlib import Path

import pytest
import torch

from lifelong.config import load_config
from lifelong.experiment import build_model, build_stream_from_config
from lifelong.models import GrowingExperts
from lifelong.training.run import run

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class Experience:
    def __init__(self, e):
        self.current_experience = e


@pytest.mark.parametrize("selector", ["gaussian", "byte_bigram", "byte_shape"])
def test_language_model_routing_is_causal(selector):
    """Changing byte t+1 never changes the prediction of byte t+1 or any earlier one: the
    experience routing position t is inferred from positions 0..t only."""
    overrides = ["growth.routing=inferred", f"growth.selector={selector}"]
    cfg = load_config(CONFIGS / "text_domains_smoke.yaml", overrides)
    model = build_model(cfg, build_stream_from_config(cfg))
    (ffn,) = [m for m in model.modules() if isinstance(m, GrowingExperts)]
    gen = torch.Generator().manual_seed(0)
    t_labels = torch.zeros(8, dtype=torch.long)

    def text(e, n=8):  # experience e's "domain": bytes from a range of its own
        return torch.randint(80 * e, 80 * e + 80, (n, 32), generator=gen)

    seen = {}
    handle = ffn.register_forward_pre_hook(lambda m, inputs: seen.update(x=inputs[0]))
    for e in range(3):  # three stages, each with statistics of the inputs it routes
        model.train()
        ffn.adaptation(Experience(e))
        model.eval()
        with torch.no_grad(), ffn.routed_to(e):
            for _ in range(4):
                batch = text(e)
                model(batch, t_labels)
                ffn.selector.update(e, seen["x"], batch)
    handle.remove()
    model.eval()
    x = torch.cat([text(0)[:, :8], text(2)[:, 8:]], 1)  # domain 0, then 2
    routed = []
    handle = ffn.register_inference_hook(lambda module, ids: routed.append(ids))
    with torch.no_grad():
        before = model(x, t_labels)
        for t in (0, 10, 30):
            changed = x.clone()
            changed[:, t + 1] = (changed[:, t + 1] + 97) % 256
            after = model(changed, t_labels)
            torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=0)
    handle.remove()
    ids = routed[0]  # (8, 32): one inferred experience per token
    assert ids.shape == (8, 32)
    # It does route by content, token by token: several stages are used, and some rows
    # change stage along the window as the evidence of the second domain comes in.
    assert len(set(ids.flatten().tolist())) > 1
    assert (ids != ids[:, :1]).any(1).any()


def test_class_il_without_labels_infers_the_experience(tmp_path):
    quiet = ["log.progress=false", "log.tensorboard=false", "log.png=false"]
    overrides = ["growth.routing=inferred", "model.head=multi", f"runs_dir={tmp_path}", *quiet]
    cfg = load_config(CONFIGS / "split_digits_class_il_smoke.yaml", overrides)
    metrics = json.loads((run(cfg) / "metrics.json").read_text())
    matrix = metrics["task_inference_matrix"]
    # Frozen pixels separate the digit pairs well even after one epoch of training.
    assert metrics["task_inference_accuracy"] > 0.9
    assert len(matrix) == 5 and matrix[0][1:] == [None] * 4 and matrix[0][0] == 1.0
    assert matrix[-1][-1] is not None and metrics["selector_bytes"] > 0
    assert metrics["average_accuracy"] > 0.5  # class-IL with no stored sample, no label


def test_a_regulariser_s_pass_over_the_trained_experience_is_routed_as_in_training(tmp_path):
    """EWC's Fisher pass runs the model in evaluation mode right after an experience, before
    the selector has its statistics: it must see the experience's own stage, as training
    did (it used to ask the empty selector and crash)."""
    from lifelong.models import routed_as_trained

    cfg = load_config(
        CONFIGS / "text_domains_smoke.yaml",
        ["growth.routing=inferred", "growth.selector=byte_bigram", "model.freeze_after_first=[]"],
    )
    model = build_model(cfg, build_stream_from_config(cfg)).eval()
    (ffn,) = [m for m in model.modules() if isinstance(m, GrowingExperts)]
    ffn.train().adaptation(Experience(0))
    ffn.eval()
    x = torch.randint(0, 256, (2, 16))
    with routed_as_trained(model, 0):
        assert ffn._forced == 0
        model(x, torch.zeros(2, dtype=torch.long))  # no statistics yet, yet no inference
    assert ffn._forced is None
    # Outside it, with no statistics, evaluation falls back to the experience trained.
    assert ffn.infer(torch.randn(2, 16, ffn.layer.dim), x).eq(0).all()

    quiet = ["log.progress=false", "log.tensorboard=false", "log.png=false"]
    overrides = [
        "growth.routing=inferred",
        "growth.selector=byte_bigram",
        "model.freeze_after_first=[]",
        "train.regularizer=ewc",
        f"runs_dir={tmp_path}",
        *quiet,
    ]
    cfg = load_config(CONFIGS / "text_domains_smoke.yaml", overrides)
    metrics = json.loads((run(cfg) / "metrics.json").read_text())
    assert metrics["task_inference_accuracy"] is not None

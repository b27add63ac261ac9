"""Bad arguments raise a ValueError naming the argument and its valid range."""

import pytest
import torch

from lifelong.layers import PEER


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_experts=1000), r"num_experts=1000 is not a perfect square.*961 or 1024"),
        (dict(num_experts=16, topk=5), r"topk=5 exceeds the 4 sub-keys.*1 <= topk <= 4"),
        (dict(num_experts=16, topk=2, key_dim=7), r"key_dim=7 must be even"),
        (dict(num_experts=16, topk=2, heads=0), r"heads=0 must be a positive integer"),
        (dict(num_experts=0), r"num_experts=0 must be a positive integer"),
        (dict(num_experts=16, topk=2, activation="tanh"), r"activation='tanh'.*gelu.*relu"),
        (dict(num_experts=16, topk=2, score="max"), r"score='max'.*sigmoid.*softmax"),
    ],
)
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PEER(8, **kwargs)


def test_stage_out_of_range():
    layer = PEER(8, num_experts=16, topk=2)
    layer.grow(1)
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"stage=2 is out of range.*stages 0\.\.1"):
        layer(x, stage=2)
    with pytest.raises(ValueError, match=r"stage=-1 is out of range"):
        layer.retrieve(x, stage=torch.tensor([0, -1, 0, 1]))
    with pytest.raises(ValueError, match=r"stage=5 is out of range"):
        layer.expert_keys(stage=5)


def test_stage_tensor_shape_and_dtype():
    layer = PEER(8, num_experts=16, topk=2)
    with pytest.raises(ValueError, match=r"stage has shape \(3,\).*\(4, 5\)"):
        layer(torch.randn(4, 5, 8), stage=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"integer tensor"):
        layer(torch.randn(4, 8), stage=torch.zeros(4))


def test_bad_input_width_and_growth_arguments():
    layer = PEER(8, num_experts=16, topk=2)
    with pytest.raises(ValueError, match=r"x has shape \(4, 7\); expected \(\.\.\., 8\)"):
        layer(torch.randn(4, 7))
    with pytest.raises(ValueError, match=r"size=0 must be a positive integer"):
        layer.grow(0)
    with pytest.raises(ValueError, match=r"init='copy'.*random.*upcycle"):
        layer.grow(1, init="copy")
    with pytest.raises(ValueError, match=r"usage has shape \(3,\); expected \(16,\)"):
        layer.grow(1, init="upcycle", usage=torch.ones(3))
    assert layer.num_stages == 1  # nothing was lost to the failed calls


def test_a_plain_peer_trains_under_any_torch_optimizer():
    """PEER(...) alone gives dense gradients: torch.optim.AdamW with its defaults steps it
    (row-sparse gradients, which AdamW refuses, are the sparse_grad=True switch)."""
    torch.manual_seed(0)
    layer = PEER(8, num_experts=16, heads=2, topk=2)
    opt = torch.optim.AdamW(layer.parameters())
    before = [p.detach().clone() for p in layer.parameters()]
    layer(torch.randn(5, 8)).pow(2).sum().backward()
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, layer.parameters(), strict=True))


def test_the_run_s_peer_uses_the_sparse_path():
    from pathlib import Path

    from lifelong.config import load_config
    from lifelong.experiment import build_model, build_stream_from_config

    configs = Path(__file__).resolve().parents[2] / "configs"
    cfg = load_config(configs / "split_digits_task_il_smoke.yaml")
    model = build_model(cfg, build_stream_from_config(cfg))
    assert [m.sparse_grad for m in model.modules() if isinstance(m, PEER)] == [True]

"""Every growing layer trains under bf16 autocast on the CPU: the sparse expert functions
compute in their tables' dtype, so bf16 activations meet fp32 tables without a dtype
error, and the result stays close to the fp32 one."""

import pytest
import torch

from lifelong.layers import LAYERS
from lifelong.optim import LazyAdamW

# Expert choice ranks the 32 tokens for each expert: bf16 rounding reorders near-ties, so
# more tokens change experts than under the other routers.
TOLERANCE = {"expert_choice": 0.25}


def _layer(name: str):
    entry = LAYERS[name]
    options = {k: v for k, v in vars(entry.options()).items() if k != "grow_size" and v is not None}
    if name in ("peer", "pkm"):
        options.update(num_experts=64, heads=2, topk=2, sparse_grad=True)
    if "hidden" in vars(entry.options()):
        options.update(hidden=32)
    return entry.build(16, **options)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_a_layer_trains_under_bf16_autocast_close_to_fp32(name):
    torch.manual_seed(0)
    layer = _layer(name).eval()  # eval: no BatchNorm update between the two forwards
    x = torch.randn(4, 8, 16)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert torch.isfinite(out).all()
    # bf16 rounding of a router's scores may flip an expert for a token: compare means.
    error = (out.float() - reference).abs().mean() / reference.abs().mean()
    assert error < TOLERANCE.get(name, 0.05), error
    layer.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = layer(x).float().pow(2).mean()
    loss.backward()
    LazyAdamW(layer.parameters(), lr=1e-3).step()
    grads = [p.grad for p in layer.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g.to_dense()).all() for g in grads)

"""Per-step work that must not grow with the number of frozen stages."""

import torch

from lifelong.layers import PEER
from lifelong.layers.peer import cat_frozen_runs


def test_cat_frozen_runs_equals_cat_with_one_input_per_frozen_run():
    frozen = [torch.randn(2, 3) for _ in range(4)]
    live = [torch.randn(1, 3, requires_grad=True) for _ in range(2)]
    chunks = [*frozen[:3], live[0], frozen[3], live[1]]
    out = cat_frozen_runs(chunks)
    assert torch.equal(out, torch.cat(chunks))
    # The autograd node sees the run of three frozen chunks as one input.
    assert len(out.grad_fn.next_functions) == 4
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    assert torch.equal(live[0].grad, weights[6:7]) and torch.equal(live[1].grad, weights[9:10])
    assert cat_frozen_runs(frozen[:1]) is frozen[0]


def test_stage_sizes_follow_growth_and_chunks_follow_the_parameter_lists():
    layer = PEER(8, num_experts=16, heads=2, topk=2)
    for m in (1, 2, 3):
        layer.grow(m)
    assert layer.stage_sub_keys == [4, 5, 7, 10] and layer.num_stages == 4
    assert layer.stage_bounds == [16, 25, 49, 100] and layer.num_experts == 100
    for plist in (layer.sub_keys1, layer.up):
        assert all(a is b for a, b in zip(layer._chunks(plist), plist, strict=True))

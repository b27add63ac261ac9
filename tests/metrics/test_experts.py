"""Expert usage and KL non-uniformity against hand computations (docs/design.md §4; Lample
et al. 2019, He 2024), per growth stage (docs/design.md §2)."""

import math

import numpy as np
import pytest
import torch

from lifelong.layers.product_keys import pair_to_id
from lifelong.metrics import expert_usage, kl_nonuniformity, pool_grid, usage_grid
from lifelong.metrics.usage_metric import usage_stats


def test_uniform_mass_has_full_usage_and_zero_kl():
    mass = torch.full((16,), 3.0)
    assert expert_usage(mass) == 1.0
    assert kl_nonuniformity(mass) == pytest.approx(0.0, abs=1e-12)


def test_one_hot_mass_has_kl_log_n():
    mass = torch.zeros(8)
    mass[5] = 2.5
    assert expert_usage(mass) == 1 / 8
    assert kl_nonuniformity(mass) == pytest.approx(math.log(8))


def test_four_experts_by_hand():
    # z' = [2, 1, 1, 0] -> z = [1/2, 1/4, 1/4, 0]; usage = 3/4
    # KL = log 4 + 1/2 log 1/2 + 2 * 1/4 log 1/4 + 0   (0 log 0 = 0)
    #    = 2 log 2 - 1/2 log 2 - log 2 = 1/2 log 2
    mass = [2.0, 1.0, 1.0, 0.0]
    assert expert_usage(mass) == 0.75
    assert kl_nonuniformity(mass) == pytest.approx(0.5 * math.log(2))
    # Only the normalised z matters, and numpy input works alike.
    assert kl_nonuniformity(np.array(mass) * 7) == pytest.approx(0.5 * math.log(2))


def test_empty_mass_gives_zero_usage_and_no_kl():
    assert expert_usage(torch.zeros(9)) == 0.0
    assert kl_nonuniformity(torch.zeros(9)) is None
    assert expert_usage(torch.zeros(0)) == 0.0
    assert kl_nonuniformity(torch.zeros(0)) is None


def test_mass_must_be_a_non_negative_vector():
    with pytest.raises(ValueError, match="1-D"):
        expert_usage(torch.ones(2, 2))
    with pytest.raises(ValueError, match="non-negative"):
        kl_nonuniformity(torch.tensor([1.0, -1.0]))


def test_each_stage_covers_the_experts_it_added():
    # n = 4, then 5, then 7 sub-keys per side: stage bounds [16, 25, 49], stage s owns the
    # ids [n_{s-1}², n_s²) = [0, 16), [16, 25), [25, 49). Mass on both sides of each bound:
    mass = torch.zeros(49, dtype=torch.float64)
    mass[[15, 16, 24, 25]] = 1.0
    stats = usage_stats(mass, [16, 25, 49])
    # stage 0: 1 of 16 experts, all its mass on one (KL = log 16); stage 1: ids 16 and 24,
    # 2 of 9, evenly (KL = log 9 + 2 · 1/2 log 1/2 = log 9 - log 2); stage 2: 1 of 24.
    # The normalised KL divides by log N of the experts counted: 1 when one takes all.
    assert stats["per_stage"] == [
        {"usage": 1 / 16, "kl": pytest.approx(math.log(16)), "kl_normalized": pytest.approx(1)},
        {
            "usage": 2 / 9,
            "kl": pytest.approx(math.log(9) - math.log(2)),
            "kl_normalized": pytest.approx(1 - math.log(2) / math.log(9)),
        },
        {"usage": 1 / 24, "kl": pytest.approx(math.log(24)), "kl_normalized": pytest.approx(1)},
    ]
    # Over all 49: 4 used, evenly: KL = log 49 - log 4.
    assert stats["usage"] == 4 / 49
    assert stats["kl"] == pytest.approx(math.log(49) - math.log(4))
    assert stats["kl_normalized"] == pytest.approx(1 - math.log(4) / math.log(49))
    # A stage that got no mass has zero usage and no KL; one expert has no normalised KL.
    only_first = torch.tensor([1.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert usage_stats(only_first, [4, 9])["per_stage"][1] == {
        "usage": 0.0,
        "kl": None,
        "kl_normalized": None,
    }
    assert usage_stats(torch.tensor([2.0]), [1])["kl_normalized"] is None


def test_usage_grid_places_each_expert_at_its_sub_key_pair():
    # Shell order for n = 3, written out: id of (i1, i2) with s = max(i1, i2) is
    # s² + i2 on the row i1 == s, else s² + s + 1 + i1:
    #   (0,0)=0 | (1,0)=1 (1,1)=2 (0,1)=3 | (2,0)=4 (2,1)=5 (2,2)=6 (0,2)=7 (1,2)=8
    grid = usage_grid(torch.arange(9.0), 3)
    expected = torch.tensor([[0.0, 3.0, 7.0], [1.0, 2.0, 8.0], [4.0, 5.0, 6.0]], dtype=grid.dtype)
    assert torch.equal(grid, expected)


def test_usage_grid_of_a_smaller_mass_leaves_new_experts_empty():
    mass = torch.zeros(16)
    mass[pair_to_id(torch.tensor(3), torch.tensor(1))] = 5.0
    grid = usage_grid(mass, 5)  # the layer grew from 4 to 5 sub-keys since
    assert grid.shape == (5, 5) and grid[3, 1] == 5.0 and grid.sum() == 5.0
    with pytest.raises(ValueError, match="grid holds only"):
        usage_grid(torch.ones(10), 3)


def test_pool_grid_sums_blocks_and_keeps_the_total():
    grid = torch.ones(5, 5, dtype=torch.float64)
    # factor ceil(5 / 2) = 3: blocks of 3x3, 3x2, 2x3, 2x2 ones
    expected = torch.tensor([[9.0, 6.0], [6.0, 4.0]], dtype=torch.float64)
    assert torch.equal(pool_grid(grid, 2), expected)
    assert pool_grid(grid, 5) is grid

"""Expert usage statistics (docs/design.md §4; Lample et al. 2019, as reported by PEER,
He 2024 Table 2).

For every expert i the router weight is accumulated over all evaluated tokens x,
``z'_i = Σ_x g_i(x)`` (g_i(x) = 0 when i is not retrieved), and normalised,
``z = z' / ||z'||_1``:

- usage       = fraction of experts with z_i > 0;
- unevenness  = KL(z || uniform) = log N + Σ_i z_i log z_i  (natural log, 0·log 0 = 0;
                0 for a perfectly even router, log N when one expert takes everything).

Expert ids are in shell order (``lifelong.layers.product_keys``): stage s of a grown PEER
owns the ids [n_{s-1}², n_s²) (docs/design.md §2; the layer's ``stage_bounds``), and
``id_to_pair`` places an id on the √N x √N sub-key grid.
"""

import math

import numpy as np
import torch
from torch import Tensor

from lifelong.layers.product_keys import id_to_pair


def _mass(mass) -> Tensor:
    """(N,) float64 CPU tensor of non-negative router mass."""
    if isinstance(mass, Tensor):
        z = mass.detach().to("cpu", torch.float64)
    else:
        z = torch.as_tensor(np.asarray(mass, dtype=np.float64))
    if z.dim() != 1:
        raise ValueError(f"mass must be 1-D (one value per expert), got shape {tuple(z.shape)}")
    if bool((z < 0).any()):
        raise ValueError("mass must be non-negative: it is a sum of router weights")
    return z


def expert_usage(mass) -> float:
    """Fraction of experts with z_i > 0. 0.0 for an all-zero mass or zero experts."""
    z = _mass(mass)
    if z.numel() == 0:
        return 0.0
    return float((z > 0).sum()) / z.numel()


def kl_nonuniformity(mass) -> float | None:
    """KL(z || uniform) over the N = len(mass) experts, in nats.

    Returns None when nothing was routed (all-zero mass, or no experts): the distribution z
    is undefined then, and None keeps NaN out of logs and averages."""
    z = _mass(mass)
    total = float(z.sum())
    if z.numel() == 0 or total <= 0.0:
        return None
    z = z / total
    nz = z[z > 0]  # 0·log 0 = 0
    return max(0.0, math.log(z.numel()) + float((nz * nz.log()).sum()))


def kl_normalized(mass) -> float | None:
    """KL(z || uniform) / log N, in [0, 1]: the KL of layers with different expert counts
    on one scale (its maximum, log N, is reached when one expert takes everything). None
    where the KL is None or N <= 1."""
    kl = kl_nonuniformity(mass)
    n = _mass(mass).numel()
    return None if kl is None or n <= 1 else kl / math.log(n)


def usage_grid(mass, num_sub_keys: int) -> Tensor:
    """(n, n) float64 grid with grid[i1, i2] = mass of the expert with sub-keys (i1, i2).

    ``mass`` may be shorter than n² (experts added after it was collected count as zero)."""
    z = _mass(mass)
    n = int(num_sub_keys)
    if z.numel() > n * n:
        raise ValueError(f"mass has {z.numel()} experts but a {n}x{n} grid holds only {n * n}")
    grid = torch.zeros(n, n, dtype=torch.float64)
    i1, i2 = id_to_pair(torch.arange(z.numel()))
    grid[i1, i2] = z
    return grid


def pool_factor(n: int, max_side: int) -> int:
    """How many sub-keys per side ``pool_grid`` sums into one cell of an n x n grid."""
    return 1 if n <= max_side else math.ceil(n / max_side)


def pool_grid(grid: Tensor, max_side: int) -> Tensor:
    """Sum-pool an (n, n) grid to at most (max_side, max_side) (zero-padded at the edge), so
    a heatmap of a million experts stays a small image. Returns the grid itself if small."""
    n = grid.shape[0]
    f = pool_factor(n, max_side)
    if f == 1:
        return grid
    side = math.ceil(n / f)
    padded = torch.zeros(side * f, side * f, dtype=grid.dtype)
    padded[:n, :n] = grid
    return padded.view(side, f, side, f).sum(dim=(1, 3))  # (side, side)

"""``usage_image``: the expert-usage heatmap that TensorBoard shows, as an RGB tensor.

A TensorBoard image has no axes, legend or colour bar, so the picture carries its own key:

- each (pooled) sub-key cell is a square block of pixels, so a 6 x 6 grid is not a speck;
- black cells are experts that got no router mass;
- white lines mark where each growth stage's sub-keys begin: stage s owns the shell
  ``max(i1, i2)`` in [n_{s-1}, n_s) of the grid (docs/design.md §2), so the square above
  and left of a line is every earlier stage;
- a strip on the right, past a grey gap, is the colour scale: the largest mass at the top,
  the smallest used mass at the bottom, log-scaled like the cells (``usage_rgb``).

It is drawn with tensor operations, not matplotlib: a run logs one image per layer,
evaluated experience and evaluation (O(T²) images), so each must cost microseconds.
"""

import math
from collections.abc import Sequence

import matplotlib
import torch
from torch import Tensor

from .experts import pool_factor, pool_grid
from .plots import stage_starts, usage_rgb

MIN_SIDE = 192  # pixels: cells are scaled up (by whole pixels) until the grid is this wide
BOUNDARY_RGB = (255, 255, 255)  # no colour of viridis, and not the unused black
GAP_RGB = (128, 128, 128)  # between the grid and the colour strip


def cell_pixels(cells_per_side: int) -> int:
    """Pixels per side of one grid cell: at least 2, so a boundary line drawn over a
    cell's first pixel row leaves the cell visible."""
    return max(2, math.ceil(MIN_SIDE / max(cells_per_side, 1)))


def colour_strip(height: int, width: int) -> Tensor:
    """(3, height, width) uint8 viridis gradient, the top row viridis(1) (the largest mass),
    the bottom row viridis(0) (the smallest used mass)."""
    levels = torch.linspace(1.0, 0.0, height, dtype=torch.float64).numpy()
    rgb = torch.from_numpy(matplotlib.colormaps["viridis"](levels)[:, :3])  # (height, 3)
    column = (rgb * 255).round().to(torch.uint8).T  # (3, height)
    return column[:, :, None].expand(3, height, width).contiguous()


def usage_image(grid, *, stage_sides: Sequence[int] = (), max_side: int = 256) -> Tensor:
    """(n, n) usage grid -> (3, H, W) uint8 image: the grid sum-pooled to at most
    ``max_side`` cells per side (``pool_grid``), each cell ``cell_pixels`` wide, with the
    stage boundaries of ``stage_sides`` (the sub-key count at the end of each stage, in
    sub-keys of the unpooled grid) and the colour strip. H is the grid's pixel side."""
    g = torch.as_tensor(grid, dtype=torch.float64)
    factor = pool_factor(g.shape[0], max_side)
    pooled = pool_grid(g, max_side)  # (m, m)
    cell = cell_pixels(pooled.shape[0])
    side = pooled.shape[0] * cell
    image = usage_rgb(pooled).repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    white = torch.tensor(BOUNDARY_RGB, dtype=torch.uint8)[:, None]
    for b in stage_starts(stage_sides):
        edge = round(b * cell / factor)  # the first pixel of sub-key b (pooled: its share)
        if 0 < edge < side:
            image[:, edge, : edge + 1] = white  # along the top of sub-key row b ...
            image[:, : edge + 1, edge] = white  # ... and down the left of sub-key column b
    gap_width, strip_width = max(2, side // 64), max(4, side // 16)
    gap = torch.tensor(GAP_RGB, dtype=torch.uint8)[:, None, None].expand(3, side, gap_width)
    return torch.cat([image, gap, colour_strip(side, strip_width)], dim=2).contiguous()

"""PNG writers and the usage heatmap images: each figure explains itself (title, the
metric named on its axis or colour bar, experiences named, integer experience ticks,
readable cell text, stage boundaries), checked on the figure objects, not on pixels."""

import math

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from PIL import Image

from lifelong.metrics import curves_png, matrix_png, usage_grid, usage_image, usage_png, usage_rgb
from lifelong.metrics.experts import pool_grid
from lifelong.metrics.plots import DPI, curves_figure, matrix_figure, paired_figure, usage_figure
from lifelong.metrics.usage_image import BOUNDARY_RGB, cell_pixels

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
R = [[0.9, 0.1, 0.2], [0.7, 0.8, 0.3]]
NAMES = ["digits 0-1", "digits 2-3", "digits 4-5"]


@pytest.mark.parametrize(
    "draw",
    [
        lambda p: matrix_png(R, p, "accuracy", higher_is_better=True),
        lambda p: matrix_png([[20.0, 90.0], [25.0, 30.0]], p, "ppl", higher_is_better=False),
        lambda p: curves_png(R, p, initial=[0.1, 0.1, 0.1], ylabel="accuracy"),
        lambda p: curves_png(R, p),
        lambda p: usage_png(usage_grid(torch.arange(16.0), 4), p, "usage"),
        lambda p: usage_png(torch.zeros(3, 3), p),
        lambda p: usage_png(torch.ones(3, 3), p, stage_sides=[2, 3]),
    ],
)
def test_pngs_are_written_at_150_dpi(tmp_path, draw):
    path = tmp_path / "sub" / "fig.png"
    assert draw(path) == path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    with Image.open(path) as png:
        assert png.info["dpi"] == pytest.approx((DPI, DPI), abs=0.5) and DPI >= 150


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two colours, computed here independently of plots.py."""

    def luminance(c):
        lin = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in to_rgb(c)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_matrix_names_experiences_labels_its_colour_bar_and_keeps_cell_text_readable(
    higher_is_better,
):
    rows = [[0.0, 0.25, 1.0], [0.5, 0.75, 1.0], [1.0, 0.0, 0.6]]  # the whole colour range
    fig = matrix_figure(
        rows,
        label="accuracy",
        title="accuracy matrix",
        experience_names=NAMES,
        higher_is_better=higher_is_better,
    )
    ax, bar = fig.axes
    assert ax.get_title() == "accuracy matrix"
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    assert bar.get_ylabel().startswith("accuracy")
    image = ax.get_images()[0]
    texts = ax.texts
    assert len(texts) == 9
    colours = set()
    for text in texts:
        j, i = (round(c) for c in text.get_position())
        cell = image.cmap(image.norm(rows[i][j]))
        assert text.get_text() == f"{rows[i][j]:.3g}"
        other = "white" if text.get_color() == "black" else "black"
        # The chosen colour contrasts at least as much as the other one would.
        assert _contrast(text.get_color(), cell) >= _contrast(other, cell)
        colours.add(text.get_color())
    assert colours == {"black", "white"}  # viridis runs from dark purple to light yellow


def test_matrix_figure_grows_with_the_experiences_and_drops_text_it_cannot_fit():
    small = matrix_figure(np.eye(3), label="accuracy", title="t")
    large = matrix_figure(np.eye(12), label="accuracy", title="t")
    huge = matrix_figure(np.eye(40), label="accuracy", title="t")
    assert large.get_figwidth() > small.get_figwidth()
    assert large.get_figheight() > small.get_figheight()
    assert len(large.axes[0].texts) == 144 and not huge.axes[0].texts
    # Unnamed experiences get a name too.
    labels = [t.get_text() for t in small.axes[0].get_xticklabels()]
    assert labels == ["experience 0", "experience 1", "experience 2"]


def test_curves_name_the_metric_experiences_and_use_integer_ticks():
    fig = curves_figure(
        R, ylabel="accuracy", title="forgetting", initial=[0.1, 0.1, 0.1], experience_names=NAMES
    )
    ax = fig.axes[0]
    assert ax.get_ylabel() == "accuracy" and ax.get_title() == "forgetting"
    assert ax.get_xlabel() == "experiences trained"
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [*NAMES, "just trained"]
    # One line per experience, from the untrained value at x = 0.
    curves = [line for line in ax.lines if line.get_label() in NAMES]
    assert [list(line.get_xdata()) for line in curves] == [[0, 1, 2]] * 3


def _boundaries(ax) -> list[tuple[list, list]]:
    white = to_rgb("white")
    return [
        (list(line.get_xdata()), list(line.get_ydata()))
        for line in ax.lines
        if to_rgb(line.get_color()) == white
    ]


def test_usage_figure_marks_where_each_stage_begins():
    fig = usage_figure(torch.ones(6, 6), title="usage of peer", stage_sides=[4, 5, 6])
    ax = fig.axes[0]
    assert ax.get_title() == "usage of peer"
    assert "router mass" in fig.axes[1].get_ylabel()
    # Stages 1 and 2 begin at sub-keys 4 and 5: the square [0, b)² is the earlier stages.
    assert _boundaries(ax) == [
        ([-0.5, 3.5, 3.5], [3.5, 3.5, -0.5]),
        ([-0.5, 4.5, 4.5], [4.5, 4.5, -0.5]),
    ]
    assert not _boundaries(usage_figure(torch.ones(4, 4), title="t", stage_sides=[4]).axes[0])


def test_usage_rgb_marks_unused_experts_black_and_uses_a_log_scale():
    grid = torch.tensor([[0.0, 1.0], [10.0, 100.0]], dtype=torch.float64)
    img = usage_rgb(grid)
    assert img.shape == (3, 2, 2) and img.dtype == torch.uint8
    assert img[:, 0, 0].tolist() == [0, 0, 0]

    assert img[:, 0, 1].tolist() == _viridis(0.0)  # smallest used mass
    assert img[:, 1, 0].tolist() == _viridis(0.5)  # log 10 is halfway from log 1 to log 100
    assert img[:, 1, 1].tolist() == _viridis(1.0)


def _viridis(t: float) -> list[int]:
    return [round(c * 255) for c in matplotlib.colormaps["viridis"](t)[:3]]


def test_usage_image_has_cells_stage_boundaries_and_a_colour_strip():
    grid = torch.arange(36.0, dtype=torch.float64).reshape(6, 6)  # one unused expert: (0, 0)
    img = usage_image(grid, stage_sides=[4, 5, 6])
    c = cell_pixels(6)
    side = 6 * c
    assert img.dtype == torch.uint8 and img.shape[:2] == (3, side) and img.shape[2] > side
    cells = usage_rgb(grid)
    for i in range(6):
        for j in range(6):  # the bottom-right pixel of each cell: never on a boundary
            assert img[:, i * c + c - 1, j * c + c - 1].tolist() == cells[:, i, j].tolist()
    white = list(BOUNDARY_RGB)
    for b in (4, 5):  # along the top of row b and down the left of column b, up to b
        assert all(img[:, b * c, x].tolist() == white for x in range(b * c + 1))
        assert all(img[:, y, b * c].tolist() == white for y in range(b * c + 1))
    assert img[:, 4 * c, 5 * c + 1].tolist() != white  # no line beyond the square [0, 4)²
    # The strip: the largest mass at the top, the smallest used mass at the bottom.
    assert img[:, 0, -1].tolist() == _viridis(1.0)
    assert img[:, side - 1, -1].tolist() == _viridis(0.0)


def test_usage_image_pools_large_grids_and_scales_the_boundaries():
    grid = torch.ones(8, 8, dtype=torch.float64)
    img = usage_image(grid, stage_sides=[4, 8], max_side=4)  # factor 2: 4 x 4 cells
    c = cell_pixels(4)
    assert img.shape[1] == 4 * c
    assert img[:, 2 * c, 0].tolist() == list(BOUNDARY_RGB)  # sub-key 4 = pooled cell 2
    pooled = usage_rgb(pool_grid(grid, 4))
    assert img[:, c - 1, c - 1].tolist() == pooled[:, 0, 0].tolist()
    assert math.isclose(img.shape[1] / c, 4)


def test_curves_use_a_log_axis_only_for_values_spanning_orders_of_magnitude():
    wide = curves_figure([[300.0, 2.0]], ylabel="perplexity", title="t", log_y=True)
    narrow = curves_figure([[150.0, 160.0]], ylabel="perplexity", title="t", log_y=True)
    assert wide.axes[0].get_yscale() == "log" and narrow.axes[0].get_yscale() == "linear"


def test_paired_slopes_are_coloured_by_which_side_is_better_for_the_metric():
    panels = [("perplexity", [10.0, 20.0, 5.0], [9.0, 25.0, 5.0]), ("csv", [25.0, 300.0], [40, 90])]
    fig = paired_figure(panels, labels=("config", "candidate"), lower_is_better=True, title="t")
    ppl, csv = fig.axes[:2]
    colours = [to_rgb(line.get_color()) for line in ppl.get_lines()]
    # Lower is better: 10 -> 9 better, 20 -> 25 worse, 5 -> 5 a tie.
    assert colours == [to_rgb("tab:green"), to_rgb("tab:red"), to_rgb("grey")]
    assert [t.get_text() for t in ppl.get_xticklabels()] == ["config", "candidate"]
    assert (ppl.get_title(), csv.get_title()) == ("perplexity", "csv")
    assert ppl.get_yscale() == "linear" and csv.get_yscale() == "log"  # 25..300 spans over 10x
    flipped = paired_figure(panels, labels=("a", "b"), lower_is_better=False, title="t")
    assert [to_rgb(line.get_color()) for line in flipped.axes[0].get_lines()][:2] == colours[1::-1]
    with pytest.raises(AssertionError, match="one baseline and one candidate"):
        paired_figure([("x", [1.0], [1.0, 2.0])], labels=("a", "b"), lower_is_better=True, title="")

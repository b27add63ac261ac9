"""PNG figures of continual-learning results, drawn with matplotlib's Agg canvas.

Figures are built as ``matplotlib.figure.Figure`` objects, not through ``pyplot``: nothing
is registered in pyplot's global figure list, no display or backend switch is needed, and
a figure is freed as soon as it goes out of scope. Each drawing function returns the path
it wrote; ``*_figure`` functions return the figure itself, so tests can read its axes,
labels and texts without looking at pixels.

Every figure says what it shows without a caption: a title, the metric named on its axis
or colour bar, experiences named as the stream names them, integer ticks where the axis
counts experiences, and stage boundaries on usage maps. PNGs are written at ``DPI``.
"""

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from ..atomic import atomic_write

DPI = 150  # sharp enough to read cell values when zoomed, small enough for a run directory
UNUSED_RGB = (0, 0, 0)  # experts that received no router mass are drawn black
BOUNDARY_COLOUR = "white"  # stage boundaries: no colour of viridis, not the unused black
# Cell text is drawn in black or white, whichever contrasts more with the cell (WCAG):
# black when the cell's relative luminance exceeds this point of equal contrast.
_EQUAL_CONTRAST_LUMINANCE = math.sqrt(1.05 * 0.05) - 0.05  # ~0.179
_MAX_CELL_TEXT = 25  # above this many experiences per side the cells are too small to label


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    atomic_write(path, buffer.getvalue())  # a killed report never leaves half a PNG
    return path


def _names(count: int, experience_names: Sequence[str] | None) -> list[str]:
    """The experiences' names, or "experience j" when the caller has none."""
    if experience_names is None or len(experience_names) < count:
        return [f"experience {j}" for j in range(count)]
    return [str(n) for n in experience_names[:count]]


def spans_orders(values) -> bool:
    """Whether the finite positive ``values`` span more than a factor of 10 (where a log
    axis reads better than a linear one)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values) & (values > 0)]
    return bool(finite.size) and finite.max() > 10 * finite.min()


def relative_luminance(rgb) -> float:
    """WCAG relative luminance of an RGB(A) colour with channels in [0, 1]."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(rgb)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def text_colour(background) -> str:
    """ "black" or "white", whichever is easier to read on ``background``."""
    return "black" if relative_luminance(background) > _EQUAL_CONTRAST_LUMINANCE else "white"


# --------------------------------------------------------------------------- matrix
def matrix_figure(
    R,
    *,
    label: str,
    title: str,
    experience_names: Sequence[str] | None = None,
    higher_is_better: bool = True,
) -> Figure:
    """Heatmap of R[i][j] (rows: trained through experience i, columns: evaluated on
    experience j) with its value in every cell, ticks named by experience and a colour bar
    labelled ``label``. The colormap is reversed for lower-is-better metrics so that "good"
    is always the same colour; each cell's text is black or white by the cell's luminance.
    The figure grows with the number of experiences (cells of 0.25-0.7 inch)."""
    rows = np.asarray(R, dtype=np.float64).reshape(len(R), -1)  # (T', T)
    n_rows, n_cols = rows.shape
    names = _names(max(n_rows, n_cols), experience_names)
    cell = min(0.7, max(0.25, 10.0 / max(n_rows, n_cols, 1)))  # inches
    longest = max((len(n) for n in names), default=0)
    # Room for the y tick names on the left and the rotated x tick names below.
    fig = Figure(
        figsize=(2.6 + 0.07 * longest + cell * n_cols, 1.8 + 0.05 * longest + cell * n_rows),
        layout="constrained",
    )
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis" if higher_is_better else "viridis_r"]
    im = ax.imshow(rows, cmap=cmap, aspect="auto")
    if n_rows and n_cols <= _MAX_CELL_TEXT and n_rows <= _MAX_CELL_TEXT:
        size = max(5.0, min(9.0, 13.0 * cell))
        for (i, j), v in np.ndenumerate(rows):
            colour = text_colour(cmap(im.norm(v)))
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=size, color=colour)
    ax.set_xticks(range(n_cols), names[:n_cols], rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n_rows), names[:n_rows])
    ax.set_xlabel("evaluated on experience j")
    ax.set_ylabel("after training through experience i")
    ax.set_title(title)
    better = "higher" if higher_is_better else "lower"
    fig.colorbar(im, ax=ax, label=f"{label} ({better} is better)")
    return fig


def matrix_png(
    R,
    path,
    title: str = "",
    higher_is_better: bool = True,
    *,
    label: str = "score",
    experience_names: Sequence[str] | None = None,
) -> Path:
    """``matrix_figure`` saved as a PNG at ``path``; the title defaults to "{label}
    matrix"."""
    fig = matrix_figure(
        R,
        label=label,
        title=title or f"{label} matrix",
        experience_names=experience_names,
        higher_is_better=higher_is_better,
    )
    return _save(fig, path)


# --------------------------------------------------------------------------- curves
def curves_figure(
    R,
    *,
    ylabel: str,
    title: str,
    initial=None,
    experience_names: Sequence[str] | None = None,
    log_y: bool = False,
) -> Figure:
    """One line per experience j, named by experience: R[i][j] against the number of
    trained experiences i+1 (its forgetting curve), starting at x = 0 from ``initial[j]``
    when given; a dot marks where j itself was trained. The x ticks are integers.
    ``log_y``: a log y axis where the matrix spans more than a factor of 10 (perplexities
    of an untrained and a trained model)."""
    rows = np.asarray(R, dtype=np.float64).reshape(len(R), -1)  # (T', T)
    n_rows, n_cols = rows.shape
    names = _names(n_cols, experience_names)
    fig = Figure(figsize=(7.0 + 1.6 * math.ceil(n_cols / 20), 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(1, n_rows + 1)
    for j in range(n_cols):
        xs, ys = x, rows[:, j]
        if initial is not None:
            xs, ys = np.concatenate([[0], x]), np.concatenate([[initial[j]], ys])
        (line,) = ax.plot(xs, ys, label=names[j])
        if j < n_rows:
            ax.plot([j + 1], [rows[j, j]], "o", color=line.get_color())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("experiences trained")
    ax.set_ylabel(ylabel)
    values = np.concatenate([rows.ravel(), np.asarray([] if initial is None else initial, float)])
    if log_y and spans_orders(values):
        ax.set_yscale("log")  # only where the values span orders of magnitude
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="o", linestyle="", color="grey"))
    labels.append("just trained")
    fig.legend(
        handles,
        labels,
        loc="outside right upper",
        fontsize=7,
        ncol=max(1, math.ceil(n_cols / 20)),
        title="experience",
        title_fontsize=8,
    )
    return fig


def curves_png(
    R,
    path,
    *,
    initial=None,
    ylabel: str = "score",
    title: str = "",
    experience_names: Sequence[str] | None = None,
    log_y: bool = False,
) -> Path:
    """``curves_figure`` saved as a PNG at ``path``; the title defaults to "{ylabel} on
    each experience"."""
    fig = curves_figure(
        R,
        ylabel=ylabel,
        title=title or f"{ylabel} on each experience as training goes on",
        initial=initial,
        experience_names=experience_names,
        log_y=log_y,
    )
    return _save(fig, path)


# -------------------------------------------------------------------------- paired

BETTER_COLOUR, WORSE_COLOUR, TIE_COLOUR = "tab:green", "tab:red", "grey"


def paired_figure(
    panels: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    labels: tuple[str, str],
    lower_is_better: bool,
    title: str,
) -> Figure:
    """A slope chart per panel (name, baseline values, candidate values; one pair per
    seed): a line from each seed's baseline (left) to its candidate (right), green where
    the candidate is better, red where it is worse. A paired comparison is read from the
    slopes, which a mean ± std hides: one outlying seed, or many that move a little."""
    fig = Figure(figsize=(2.4 * len(panels) + 0.6, 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, base, cand) in zip(axes, panels, strict=True):
        assert len(base) == len(cand), "one baseline and one candidate value per seed"
        for b, c in zip(base, cand, strict=True):
            gain = (b - c) if lower_is_better else (c - b)
            colour = BETTER_COLOUR if gain > 0 else WORSE_COLOUR if gain < 0 else TIE_COLOUR
            ax.plot([0, 1], [b, c], "o-", color=colour, alpha=0.8, markersize=3)
        if lower_is_better and spans_orders([*base, *cand]):
            ax.set_yscale("log")  # perplexities of one held-out file can span orders
        ax.set_xticks([0, 1], labels)
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.legend(
        [Line2D([], [], color=BETTER_COLOUR), Line2D([], [], color=WORSE_COLOUR)],
        ["candidate better", "candidate worse"],
        loc="outside lower center",
        ncol=2,
        fontsize=8,
    )
    return fig


def paired_png(panels, path, **kwargs) -> Path:
    """``paired_figure`` saved as a PNG at ``path``."""
    return _save(paired_figure(panels, **kwargs), path)


# ---------------------------------------------------------------------------- usage
def usage_rgb(grid: Tensor) -> Tensor:
    """(n, n) usage grid -> (3, n, n) uint8 image: log-scaled viridis over the used experts,
    black where an expert got no mass (so usage < 100% is visible at a glance)."""
    g = torch.as_tensor(grid, dtype=torch.float64)
    used = g > 0
    rgb = torch.zeros(*g.shape, 3, dtype=torch.float64)  # (n, n, 3)
    if bool(used.any()):
        logs = torch.log(g[used])
        lo, hi = float(logs.min()), float(logs.max())
        scaled = (logs - lo) / (hi - lo) if hi > lo else torch.ones_like(logs)
        colors = matplotlib.colormaps["viridis"](scaled.numpy())[:, :3]  # (used, 3)
        rgb[used] = torch.from_numpy(colors)
    rgb[~used] = torch.tensor(UNUSED_RGB, dtype=torch.float64) / 255
    return (rgb * 255).round().to(torch.uint8).permute(2, 0, 1).contiguous()  # (3, n, n)


def stage_starts(stage_sides: Sequence[int]) -> list[int]:
    """The sub-key index where each stage after the first begins: stage s owns the shell
    ``max(i1, i2)`` in [sides[s-1], sides[s]) of the grid (docs/design.md §2)."""
    return [int(b) for b in stage_sides[:-1]]


def usage_figure(grid, *, title: str, stage_sides: Sequence[int] = ()) -> Figure:
    """Heatmap of an expert usage grid (grid[i1, i2] = router mass of expert (i1, i2)) on
    a log colour scale with a labelled colour bar; unused experts are black, and a white
    line marks where each growth stage's sub-keys begin (``stage_sides``: the sub-key
    count at the end of each stage, e.g. ``isqrt`` of the layer's ``stage_bounds``)."""
    g = np.asarray(torch.as_tensor(grid, dtype=torch.float64))
    fig = Figure(figsize=(5.6, 4.8), layout="constrained")
    ax = fig.add_subplot()
    masked = np.ma.masked_less_equal(g, 0.0)
    positive = g[g > 0]
    norm = LogNorm(positive.min(), positive.max()) if positive.size else None
    im = ax.imshow(masked, cmap="viridis", norm=norm, interpolation="nearest")
    ax.set_facecolor("black")
    for b in stage_starts(stage_sides):
        edge = b - 0.5  # between sub-key b-1 and b: the square [0, b)² is the earlier stages
        ax.plot([-0.5, edge, edge], [edge, edge, -0.5], color=BOUNDARY_COLOUR, linewidth=1.0)
    ax.set_xlim(-0.5, g.shape[1] - 0.5)
    ax.set_ylim(g.shape[0] - 0.5, -0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("sub-key i2")
    ax.set_ylabel("sub-key i1")
    ax.set_title(title)
    handles = [Line2D([], [], marker="s", linestyle="", color="black", markeredgecolor="grey")]
    labels = ["unused expert"]
    if stage_starts(stage_sides):
        handles.append(Line2D([], [], color=BOUNDARY_COLOUR, linewidth=1.0))
        labels.append("growth stage boundary")
    legend = fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=7)
    legend.get_frame().set_facecolor("lightgrey")  # the white boundary line stays visible
    fig.colorbar(im, ax=ax, label="router mass z' (log scale)")
    return fig


def usage_png(grid, path, title: str = "", *, stage_sides: Sequence[int] = ()) -> Path:
    """``usage_figure`` saved as a PNG at ``path``."""
    fig = usage_figure(grid, title=title or "expert usage", stage_sides=stage_sides)
    return _save(fig, path)

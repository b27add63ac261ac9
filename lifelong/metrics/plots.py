"""PNG figures of continual-learning results, drawn with matplotlib's Agg canvas.

Figures are built as ``matplotlib.figure.Figure`` objects, not through ``pyplot``: nothing
is registered in pyplot's global figure list, no display or backend switch is needed, and
a figure is freed as soon as it goes out of scope.
"""

from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from torch import Tensor

UNUSED_RGB = (0, 0, 0)  # experts that received no router mass are drawn black


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100)
    return path


def matrix_png(R, path, title: str = "", higher_is_better: bool = True) -> Path:
    """Heatmap of R[i][j] (rows: trained through i, columns: evaluated on j), values
    written in the cells; the colormap is reversed for lower-is-better metrics so that
    "good" is always the same colour."""
    rows = np.asarray(R, dtype=np.float64)  # (T', T)
    fig = Figure(figsize=(1.0 + 0.6 * rows.shape[1], 1.0 + 0.5 * rows.shape[0]))
    ax = fig.add_subplot()
    im = ax.imshow(rows, cmap="viridis" if higher_is_better else "viridis_r", aspect="auto")
    for (i, j), v in np.ndenumerate(rows):
        ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xlabel("evaluated on experience j")
    ax.set_ylabel("trained through experience i")
    ax.set_xticks(range(rows.shape[1]))
    ax.set_yticks(range(rows.shape[0]))
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return _save(fig, path)


def curves_png(R, path, *, initial=None, ylabel: str = "metric", title: str = "") -> Path:
    """One line per experience j: R[i][j] against the number of trained experiences i+1
    (its forgetting curve), starting at x = 0 from ``initial[j]`` when given; a marker
    shows where j itself was trained."""
    rows = np.asarray(R, dtype=np.float64)  # (T', T)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    x = np.arange(1, rows.shape[0] + 1)
    for j in range(rows.shape[1]):
        xs, ys = x, rows[:, j]
        if initial is not None:
            xs, ys = np.concatenate([[0], x]), np.concatenate([[initial[j]], ys])
        (line,) = ax.plot(xs, ys, label=f"exp {j}")
        if j < rows.shape[0]:
            ax.plot([j + 1], [rows[j, j]], "o", color=line.get_color())
    ax.set_xlabel("trained experiences")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=max(1, rows.shape[1] // 10))
    fig.tight_layout()
    return _save(fig, path)


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


def usage_png(grid, path, title: str = "") -> Path:
    """Heatmap of an expert usage grid (grid[i1, i2] = router mass of expert (i1, i2)) on
    a log colour scale; unused experts are left blank."""
    g = np.asarray(torch.as_tensor(grid, dtype=torch.float64))
    fig = Figure(figsize=(5, 4.2))
    ax = fig.add_subplot()
    masked = np.ma.masked_less_equal(g, 0.0)
    positive = g[g > 0]
    norm = LogNorm(positive.min(), positive.max()) if positive.size else None
    im = ax.imshow(masked, cmap="viridis", norm=norm, interpolation="nearest")
    ax.set_facecolor("black")
    ax.set_xlabel("sub-key i2")
    ax.set_ylabel("sub-key i1")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="router mass z'")
    fig.tight_layout()
    return _save(fig, path)

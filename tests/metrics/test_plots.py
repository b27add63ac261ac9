"""PNG writers and the usage heatmap image."""

import matplotlib
import pytest
import torch

from lifelong.metrics import curves_png, matrix_png, usage_grid, usage_png, usage_rgb

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
R = [[0.9, 0.1, 0.2], [0.7, 0.8, 0.3]]


@pytest.mark.parametrize(
    "draw",
    [
        lambda p: matrix_png(R, p, "accuracy", higher_is_better=True),
        lambda p: matrix_png([[20.0, 90.0], [25.0, 30.0]], p, "ppl", higher_is_better=False),
        lambda p: curves_png(R, p, initial=[0.1, 0.1, 0.1], ylabel="accuracy"),
        lambda p: curves_png(R, p),
        lambda p: usage_png(usage_grid(torch.arange(16.0), 4), p, "usage"),
        lambda p: usage_png(torch.zeros(3, 3), p),
        lambda p: usage_png(torch.ones(3, 3), p),
    ],
)
def test_pngs_are_written(tmp_path, draw):
    path = tmp_path / "sub" / "fig.png"
    assert draw(path) == path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_usage_rgb_marks_unused_experts_black_and_uses_a_log_scale():
    grid = torch.tensor([[0.0, 1.0], [10.0, 100.0]], dtype=torch.float64)
    img = usage_rgb(grid)
    assert img.shape == (3, 2, 2) and img.dtype == torch.uint8
    assert img[:, 0, 0].tolist() == [0, 0, 0]

    def as_rgb(t: float) -> list[int]:
        return [round(c * 255) for c in matplotlib.colormaps["viridis"](t)[:3]]

    assert img[:, 0, 1].tolist() == as_rgb(0.0)  # smallest used mass
    assert img[:, 1, 0].tolist() == as_rgb(0.5)  # log 10 is halfway from log 1 to log 100
    assert img[:, 1, 1].tolist() == as_rgb(1.0)

"""A pass that only reads data leaves the run's random stream where it was, so a run
that fills a stage selector trains exactly as the same run without one."""

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from lifelong.config import load_config
from lifelong.data.in_order import in_order
from lifelong.training.checkpoint import load_checkpoint
from lifelong.training.run import run

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "text_domains_smoke.yaml"
QUIET = ["log.progress=false", "log.tensorboard=false", "log.png=false"]


def next_draw_after(read) -> torch.Tensor:
    torch.manual_seed(0)
    read()
    return torch.rand(3)


def test_in_order_draws_nothing_from_the_global_generator():
    data = torch.arange(10).view(5, 2)
    untouched = next_draw_after(lambda: None)
    assert torch.equal(next_draw_after(lambda: list(in_order(data, 2))), untouched)
    # The reason it exists: a plain loader, even unshuffled, moves the global stream.
    assert not torch.equal(next_draw_after(lambda: list(DataLoader(data, 2))), untouched)
    assert [b.tolist() for b in in_order(data, 2)] == [
        [[0, 1], [2, 3]],
        [[4, 5], [6, 7]],
        [[8, 9]],
    ]


def test_a_stage_selector_does_not_change_training(tmp_path):
    """Inferred routing only adds a pass over each experience after it is trained (the
    selector's statistics); the weights it trains equal those of label routing."""
    weights = []
    for routing in ("task_aware", "inferred"):
        overrides = [f"growth.routing={routing}", "growth.selector=byte_bigram"]
        cfg = load_config(CONFIG, [*overrides, f"runs_dir={tmp_path}", f"name={routing}", *QUIET])
        weights.append(load_checkpoint(Path(run(cfg)) / "checkpoint.pt")["model"])
    label, inferred = weights
    trained = [k for k in label if "selector" not in k]
    assert trained and all(torch.equal(label[k], inferred[k]) for k in trained)

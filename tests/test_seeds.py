"""The run's seed varies everything random in a stream, not only the initialisation:
``stream.seed`` defaults to ``seed`` (the class order and split, the permutations, the
text windows), so a suite's seeds give independent streams."""

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from lifelong.config import load_config
from lifelong.experiment import build_stream_from_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def stream(config: str, seed: int, *overrides: str):
    cfg = load_config(CONFIGS / config, [f"seed={seed}", *overrides])
    assert cfg.stream.seed == seed  # written into the config, so config.yaml records it
    return build_stream_from_config(cfg)


def first_batch(experience) -> torch.Tensor:
    return next(iter(DataLoader(experience.dataset, batch_size=len(experience.dataset))))[0]


def test_seeds_give_different_class_orders():
    a, b = (stream("split_digits_class_il.yaml", s) for s in (0, 1))
    classes = [
        [sorted(e.classes_in_this_experience) for e in x.benchmark.train_stream] for x in (a, b)
    ]
    assert classes[0] != classes[1]


def moved_pixels(spec) -> list[int | None]:
    """For each pixel of experience 1, the pixel of experience 0 (the identity) it came
    from, found by matching columns over the same training digits."""
    x0, x1 = (first_batch(e) for e in list(spec.benchmark.train_stream)[:2])  # (N, 64) each
    source = {x0[:, j].numpy().tobytes(): j for j in range(64)}
    return [source.get(x1[:, j].numpy().tobytes()) for j in range(64)]


def test_seeds_give_different_permutations():
    a, b = (stream("permuted_digits.yaml", s, "stream.n_experiences=2") for s in (0, 1))
    pa, pb = moved_pixels(a), moved_pixels(b)
    assert None not in pa and None not in pb  # experience 1 moves the pixels of 0
    assert pa != pb


def test_seeds_give_different_text_windows():
    small = ["stream.train_sequences=16", "stream.test_sequences=8", "stream.seq_len=16"]
    a, b = (stream("text_domains.yaml", s, *small) for s in (0, 1))
    for x, y in zip(a.benchmark.test_stream, b.benchmark.test_stream, strict=True):
        assert not torch.equal(first_batch(x), first_batch(y))


def test_an_explicit_stream_seed_wins():
    cfg = load_config(CONFIGS / "permuted_digits.yaml", ["seed=4", "stream.seed=2"])
    assert (cfg.seed, cfg.stream.seed) == (4, 2)

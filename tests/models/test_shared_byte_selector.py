"""A byte LM with a growing layer in several blocks shares one selector of the input bytes:
one copy of the counts, every byte counted once, each batch scored once."""

import json
from pathlib import Path

import pytest
import torch

from lifelong.config import load_config
from lifelong.experiment import build_model, build_stream_from_config
from lifelong.models import GrowingExperts
from lifelong.training.evaluate import load_run
from lifelong.training.run import run

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "text_domains_no_labels_smoke.yaml"
QUIET = ["log.progress=false", "log.tensorboard=false", "log.png=false"]


def selectors(model) -> list:
    return [m.selector for m in model.modules() if isinstance(m, GrowingExperts)]


@pytest.mark.parametrize(("selector", "shared"), [("byte_bigram", True), ("gaussian", False)])
def test_layers_share_a_selector_of_the_bytes_and_not_one_of_their_inputs(selector, shared):
    cfg = load_config(CONFIG, [f"growth.selector={selector}"])
    first, second = selectors(build_model(cfg, build_stream_from_config(cfg)))
    assert (first is second) == shared  # a Gaussian models each layer's own input


def test_every_byte_is_counted_once_and_each_batch_scored_once(tmp_path):
    cfg = load_config(CONFIG, [f"runs_dir={tmp_path}", *QUIET])
    done = run(cfg)
    _, built = load_run(done)
    (selector, _) = selectors(built.model)
    stream = built.spec.benchmark.train_stream
    for e, experience in enumerate(stream):
        windows = torch.stack([d[0] for d in experience.dataset])  # (N, T)
        assert int(selector.unigram[e].sum()) == windows.numel()  # not once per layer
    metrics = json.loads((done / "metrics.json").read_text())
    assert metrics["selector_bytes"] == selector.nbytes()

    calls = []
    original = selector.log_tables
    selector.log_tables = lambda: calls.append(1) or original()
    built.model.eval()
    with torch.no_grad():
        built.model(windows[:4], torch.zeros(4, dtype=torch.long))
        built.model(windows[:4].clone(), torch.zeros(4, dtype=torch.long))
    assert len(calls) == 2  # one per forward, not one per layer


@pytest.mark.parametrize("name", ["byte_bigram", "byte_shape"])
def test_the_kept_scores_are_dropped_when_the_counts_or_the_bytes_change(name):
    from lifelong.models.selectors import build_selector

    sel = build_selector(name, dim=8)
    sel.update(0, None, torch.tensor([list(b"def f(x):\n    return x\n" * 4)]))
    sel.update(1, None, torch.tensor([list(b"1.5,2.25,3.0\n" * 8)]))
    tokens = torch.tensor([list(b"x = 1.5,2.0\n")])
    before = sel.scores(None, tokens=tokens)
    assert sel.scores(None, tokens=tokens) is before  # the second layer's ask
    sel.update(1, None, torch.tensor([list(b"x = 1, 2\n" * 8)]))
    after = sel.scores(None, tokens=tokens)
    assert after is not before and not torch.equal(after, before)  # new counts, new scores
    tokens[0, 0] = ord("y")  # in place: the version counter moves
    assert sel.scores(None, tokens=tokens) is not after

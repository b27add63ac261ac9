"""How well can the text domains be told apart from a prefix? The ceiling that stage
inference on the byte LM runs against, measured without any model.

    python benchmarks/domain_id.py --seeds 0 1 2 --json domain_id.json
    python benchmarks/domain_id.py --seeds 0 1 2 3 --validation

On each seed's text_domains stream (the default config's windows: whole documents held
out for testing; ``--validation``: held-out training files instead), for prefixes of
1-64 bytes of every test window, the accuracy of:

- ``bigram λ, ε``: the library's causal naive Bayes (``ByteBigramSelector``) with bigram
  weight λ and uniform weight ε (ε = 0: add-½ smoothing only), counts from each domain's
  training windows, as a run fills them;
- ``n-gram``: the same interpolation carried to orders 3 and 4 (Jelinek-Mercer, each
  level weighted λ over the one below, the top level mixed with the uniform at ε);
- ``shape n-gram``: that interpolation over the bytes' shapes (digits, lower- and
  upper-case letters each one symbol; ``ByteShapeSelector``, ``growth.selector=
  byte_shape``), alone and added to the bigram's score with weight w;
- ``shape × byte in shape``: a class-based model (Brown et al. 1992): the shape 7-gram
  times p(byte | its shape, the byte before), interpolated as the bigram;
- ``neural LM``: one fixed-window neural byte LM per domain (Bengio et al. 2003; the
  per-task generative model of Expert Gate), alone and summed with the shape 7-gram;
- ``logistic``: a discriminative upper reference, not a selector a continual learner may
  use: logistic regression on the 1-4-byte n-gram counts of the prefix, fitted on the
  prefixes of every domain's training windows at once (it sees all domains together).

Prints JSON {method: {prefix: accuracy, ...}, ...} averaged over seeds.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

PREFIXES = (1, 8, 16, 32, 64)
V = 256  # bytes


def windows(stream) -> list[torch.Tensor]:
    """Per experience, its input windows (N, T) int64."""
    return [torch.stack([d[0] for d in e.dataset]).long() for e in stream]


def bigram_accuracy(train, test, weight: float, uniform: float) -> dict[int, float]:
    return prefix_accuracy(bigram_scores(train, test, weight=weight, uniform=uniform))


def shape_scores(train, test, order: int) -> list[torch.Tensor]:
    """Per test experience, (N, T, E) scores of ``ByteShapeSelector`` at ``order``."""
    from lifelong.models.shape_selector import ByteShapeSelector

    return selector_scores(ByteShapeSelector(order=order), train, test)


def bigram_scores(train, test, **options) -> list[torch.Tensor]:
    """Per test experience, (N, T, E) scores of the library's bigram selector."""
    from lifelong.models.byte_selector import ByteBigramSelector

    return selector_scores(ByteBigramSelector(**options), train, test)


def selector_scores(selector, train, test) -> list[torch.Tensor]:
    """``selector`` filled with each domain's training windows, scoring each test domain's."""
    for e, w in enumerate(train):
        selector.update(e, None, w)
    return [selector.scores(None, tokens=w) for w in test]


def in_shape_scores(train, test, weight=0.5, uniform=0.2) -> list[torch.Tensor]:
    """Per test experience, (N, T, E) log p_e(x_t | shape(x_t), x_{t-1}): the byte within
    its shape class, λ·c(a, b) / c(a, class(b)) + (1-λ)·p(b | class(b)) (add-½ within the
    class, the same fallback for an unseen context), mixed with the uniform over the class at
    ε. A class of one byte (punctuation, space) scores 0: its shape said everything."""
    from lifelong.models.shape_selector import shapes

    cls = shapes()  # (V,) the class of each byte
    size = torch.bincount(cls, minlength=V).double()[cls]  # (V,) members of b's class
    scores = [[] for _ in test]
    for w in train:
        count = torch.bincount(w.reshape(-1), minlength=V).double() + 0.5
        in_class = count / torch.zeros(V).double().index_add_(0, cls, count)[cls]  # (V,)
        pairs = torch.bincount((w[:, :-1] * V + w[:, 1:]).reshape(-1), minlength=V * V)
        pairs = pairs.double().view(V, V)  # [a, b]
        seen = torch.zeros(V, V).double().index_add_(1, cls, pairs)[:, cls]  # c(a, class(b))
        mix = torch.where(
            seen > 0, weight * pairs / seen.clamp(min=1) + (1 - weight) * in_class, in_class
        )
        log_mix = ((1 - uniform) * mix + uniform / size).log().masked_fill(size == 1, 0.0)
        log_first = ((1 - uniform) * in_class + uniform / size).log().masked_fill(size == 1, 0.0)
        for i, x in enumerate(test):
            scores[i].append(torch.cat([log_first[x[:, :1]], log_mix[x[:, :-1], x[:, 1:]]], 1))
    return [torch.stack(s, -1).float() for s in scores]


def neural_scores(train, test, seed: int, context=8, uniform=0.2) -> list[torch.Tensor]:
    """Per test experience, (N, T, E) log((1-ε)·p_e(x_t | the 8 bytes before) + ε/V) under
    a fixed-window neural LM fitted to domain e's training windows alone: byte embeddings
    of 16, a hidden layer of 256, Adam at 3e-3, 4 epochs of 512 positions a step."""
    from torch import nn

    def contexts(w):  # (N, T) -> (N·T, context) the bytes before each, V = before the text
        padded = torch.cat([torch.full((w.shape[0], context), V), w], 1)
        return padded.unfold(1, context, 1)[:, :-1].reshape(-1, context)

    scores = [[] for _ in test]
    for w in train:
        torch.manual_seed(seed)
        lm = nn.Sequential(
            nn.Embedding(V + 1, 16), nn.Flatten(), nn.Linear(16 * context, 256), nn.ReLU(),
            nn.Linear(256, V), nn.LogSoftmax(-1),
        )  # fmt: skip
        optimizer = torch.optim.Adam(lm.parameters(), 3e-3)
        x, y = contexts(w), w.reshape(-1)
        for _ in range(4):
            for batch in torch.randperm(len(y)).split(512):
                loss = -lm(x[batch]).gather(1, y[batch, None]).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            for i, t in enumerate(test):
                p = lm(contexts(t)).gather(1, t.reshape(-1, 1)).exp().view(t.shape)
                scores[i].append(torch.log((1 - uniform) * p + uniform / V))
    return [torch.stack(s, -1).float() for s in scores]


def ngram_accuracy(train, test, order: int, weight: float, uniform: float) -> dict[int, float]:
    """The selector's interpolation carried to higher orders: level n is λ·ML(b | the n-1
    bytes before) + (1-λ)·level n-1 (falling back to level n-1 for a context never seen),
    level 1 the add-½ unigram, and the top level mixed with the uniform at ε."""
    scores = [[] for _ in test]
    for w in train:
        unigram = torch.bincount(w.reshape(-1), minlength=V).double() + 0.5
        levels = [_Counts(grams(w, n)) for n in range(2, order + 1)]
        for i, x in enumerate(test):
            p = (unigram / unigram.sum())[x]  # (N, T)
            for n, counts in enumerate(levels, start=2):
                g = grams(x, n)  # (N, T-n+1)
                seen = counts.context(g // V)
                ml = counts.full(g) / seen.clamp(min=1)
                below = p[:, n - 1 :]
                level = torch.where(seen > 0, weight * ml + (1 - weight) * below, below)
                p = torch.cat([p[:, : n - 1], level], 1)
            scores[i].append(torch.log((1 - uniform) * p + uniform / V))
    return prefix_accuracy([torch.stack(s, -1).float() for s in scores])


def grams(w: torch.Tensor, n: int) -> torch.Tensor:
    """(N, T) bytes -> (N, T-n+1) codes of the n-grams ending at t >= n-1."""
    return sum(w[:, n - 1 - k : w.shape[1] - k] * V**k for k in range(n))


class _Counts:
    """Sparse counts of n-gram codes and of their contexts (code // V), by sorted lookup:
    V**4 dense counts would not fit."""

    def __init__(self, codes: torch.Tensor):
        self._full = torch.unique(codes.reshape(-1), return_counts=True)
        self._context = torch.unique(codes.reshape(-1) // V, return_counts=True)

    @staticmethod
    def _get(table, q: torch.Tensor) -> torch.Tensor:
        keys, counts = table
        i = torch.searchsorted(keys, q).clamp(max=keys.numel() - 1)
        return torch.where(keys[i] == q, counts[i], 0).double()

    def full(self, q: torch.Tensor) -> torch.Tensor:
        return self._get(self._full, q)

    def context(self, q: torch.Tensor) -> torch.Tensor:
        return self._get(self._context, q)


def prefix_accuracy(scores: list[torch.Tensor]) -> dict[int, float]:
    """Per test experience e, (N, T, E) per-byte scores -> accuracy of the running-sum
    argmax at each prefix length, averaged over windows of every experience."""
    right = {p: 0 for p in PREFIXES}
    total = sum(s.shape[0] for s in scores)
    for e, s in enumerate(scores):
        guess = s.cumsum(1).argmax(-1)  # (N, T)
        for p in PREFIXES:
            right[p] += int((guess[:, p - 1] == e).sum())
    return {p: right[p] / total for p in PREFIXES}


def logistic_accuracy(train, test) -> dict[int, float]:
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression

    def text(rows):
        return [bytes(r.tolist()).decode("latin-1") for r in rows]

    out = {}
    for p in PREFIXES:
        features = HashingVectorizer(
            analyzer="char", ngram_range=(1, 4), n_features=2**18, alternate_sign=False
        )
        x = features.transform([t for w in train for t in text(w[:, :p])])
        y = np.concatenate([np.full(len(w), e) for e, w in enumerate(train)])
        fit = LogisticRegression(C=10, max_iter=2000).fit(x, y)
        guess = fit.predict(features.transform([t for w in test for t in text(w[:, :p])]))
        truth = np.concatenate([np.full(len(w), e) for e, w in enumerate(test)])
        out[p] = float((guess == truth).mean())
    return out


def measure(seed: int, validation: bool = False) -> dict[str, dict[int, float]]:
    from lifelong.config import load_config
    from lifelong.experiment import build_stream_from_config

    root = Path(__file__).resolve().parents[1]
    overrides = [f"seed={seed}"] + (["stream.validation=true"] if validation else [])
    cfg = load_config(root / "configs" / "text_domains.yaml", overrides)
    bench = build_stream_from_config(cfg).benchmark
    train, test = windows(bench.train_stream), windows(bench.test_stream)
    grid = [(0.5, 0.2), (0.3, 0.2), (0.5, 0.05), (0.1, 0.0), (0.3, 0.0), (0.5, 0.0)]
    out = {f"bigram λ={w}, ε={u}": bigram_accuracy(train, test, w, u) for w, u in grid}
    for order, w, u in [(3, 0.3, 0.0), (3, 0.5, 0.2), (4, 0.5, 0.2)]:
        out[f"{order}-gram λ={w}, ε={u}"] = ngram_accuracy(train, test, order, w, u)
    # The byte-shape rows of docs/task_inference.md ("Byte shapes"): each step's choice.
    bigram = bigram_scores(train, test)
    for order, w in [(5, 1.0), (7, 2.0), (7, 4.0), (7, None)]:
        shape = shape_scores(train, test, order)
        if w is None:
            out[f"shape {order}-gram (byte_shape)"] = prefix_accuracy(shape)
        else:
            out[f"bigram + {w:g} · shape {order}-gram"] = prefix_accuracy(
                [b + w * s for b, s in zip(bigram, shape, strict=True)]
            )
    # Two richer generative identifiers against byte shapes (docs/task_inference.md).
    shape = shape_scores(train, test, 7)
    in_shape = in_shape_scores(train, test)
    out["shape 7-gram × byte in shape"] = prefix_accuracy(
        [s + b for s, b in zip(shape, in_shape, strict=True)]
    )
    neural = neural_scores(train, test, seed)
    out["neural LM per domain"] = prefix_accuracy(neural)
    out["neural LM + shape 7-gram"] = prefix_accuracy(
        [n + s for n, s in zip(neural, shape, strict=True)]
    )
    out["logistic (all domains at once)"] = logistic_accuracy(train, test)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--validation",
        action="store_true",
        help="score held-out training files (stream.validation=true), not the test files",
    )
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    per_seed = [measure(s, args.validation) for s in args.seeds]
    result = {
        method: {p: float(np.mean([r[method][p] for r in per_seed])) for p in PREFIXES}
        for method in per_seed[0]
    }
    split = "validation" if args.validation else "test"
    text = json.dumps(
        {"seeds": args.seeds, "split": split, "accuracy": result}, indent=1, ensure_ascii=False
    )
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

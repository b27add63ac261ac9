"""Expert growth in 30 seconds: two tasks of real handwritten digits, no forgetting.

    python scripts/peer_demo.py

Task 1 is digits 0-4, task 2 is digits 5-9 (scikit-learn's ``load_digits``, on disk with
the package). A PEER model learns task 1, then grows new experts for task 2 while its old
experts, its query network and its stem stay frozen; task-aware routing sends each task to
the experts of its own stage. A dense MLP fine-tuned on the same stream is the contrast.
Prints task-1 accuracy before and after learning task 2 for both.
"""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

from lifelong.layers import PEER
from lifelong.optim import LazyAdamW


def digit_tasks(seed: int):
    """[(x_train, y_train, x_test, y_test)] for digits 0-4 and 5-9, labels 0-4 in each."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32) / 16.0
    y = torch.tensor(y)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    cut = int(0.8 * len(y))
    tasks = []
    for lo in (0, 5):
        keep = (y >= lo) & (y < lo + 5)
        tr, te = keep.clone(), keep.clone()
        tr[cut:], te[:cut] = False, False
        tasks.append((x[tr], y[tr] - lo, x[te], y[te] - lo))
    return tasks


class TaskModel(nn.Module):
    """stem -> FFN (PEER or dense, residual) -> one 5-way head per task."""

    def __init__(self, ffn: nn.Module, dim: int):
        super().__init__()
        self.stem = nn.Linear(64, dim)
        self.ffn = ffn
        self.heads = nn.ModuleList([nn.Linear(dim, 5) for _ in range(2)])

    def forward(self, x, task: int):
        h = torch.relu(self.stem(x))
        h = h + (self.ffn(h, stage=task) if isinstance(self.ffn, PEER) else self.ffn(h))
        return self.heads[task](h)


def fit(model, opt, x, y, task, epochs, frozen=()):
    model.train()
    for module in frozen:  # frozen modules keep their BatchNorm statistics too
        module.eval()
    for _ in range(epochs):
        for batch in torch.randperm(len(y)).split(64):
            loss = nn.functional.cross_entropy(model(x[batch], task), y[batch])
            loss.backward()
            opt.step()
            opt.zero_grad()


@torch.no_grad()
def accuracy(model, x, y, task):
    model.eval()
    return (model(x, task).argmax(1) == y).float().mean().item()


def run(kind: str, tasks, dim: int, epochs: int):
    if kind == "peer":
        ffn = PEER(dim, num_experts=16**2, heads=4, topk=4, sparse_grad=True)
    else:  # dense FFN with the same active hidden neurons per token (heads * topk)
        ffn = nn.Sequential(nn.Linear(dim, 16), nn.GELU(), nn.Linear(16, dim))
    model = TaskModel(ffn, dim)
    x1, y1, t1x, t1y = tasks[0]
    fit(model, LazyAdamW(model.parameters(), lr=3e-3), x1, y1, 0, epochs)
    before = accuracy(model, t1x, t1y, 0)

    frozen = ()
    if kind == "peer":
        model.ffn.grow(8)  # 16² -> 24² experts; stage 0 is frozen
        frozen = (model.stem, model.ffn.query)
        for module in frozen:
            module.requires_grad_(False)
    x2, y2, t2x, t2y = tasks[1]
    params = [p for p in model.parameters() if p.requires_grad]
    fit(model, LazyAdamW(params, lr=3e-3), x2, y2, 1, epochs, frozen)
    return before, accuracy(model, t1x, t1y, 0), accuracy(model, t2x, t2y, 1)


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    tasks = digit_tasks(args.seed)
    print(f"{'model':14s} {'task1 before':>12s} {'task1 after':>12s} {'task2':>8s}")
    for kind in ("peer", "dense"):
        torch.manual_seed(args.seed)
        before, after, second = run(kind, tasks, args.dim, args.epochs)
        name = "PEER + growth" if kind == "peer" else "dense naive"
        print(f"{name:14s} {before:12.3f} {after:12.3f} {second:8.3f}")


if __name__ == "__main__":
    main()

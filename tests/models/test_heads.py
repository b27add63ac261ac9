"""TaskHeads: each sample goes through its own task's masked head, whether the batch holds
one task or mixes them, with gradients or without."""

import torch
from torch import nn

from lifelong.models.heads import MASKED_LOGIT, MaskedHead, TaskHeads


def _heads(classes_per_task: dict[int, list[int]], dim: int = 5, num_classes: int = 6):
    heads = TaskHeads(dim, num_classes)
    torch.manual_seed(0)
    for t, classes in classes_per_task.items():
        head = MaskedHead(dim, num_classes)
        nn.init.normal_(head.weight)
        nn.init.normal_(head.bias)
        head.allowed[classes] = True
        heads.heads[str(t)] = head
    return heads


def _literal(heads: TaskHeads, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Row by row: the row's head, classes outside its task at MASKED_LOGIT."""
    rows = []
    for x, t in zip(h, labels.tolist(), strict=True):
        head = heads.heads[str(t)]
        logits = head.weight @ x + head.bias
        rows.append(torch.where(head.allowed, logits, torch.tensor(MASKED_LOGIT)))
    return torch.stack(rows)


def test_a_mixed_batch_matches_a_row_by_row_computation_with_and_without_gradients():
    heads = _heads({0: [0, 1], 2: [2, 3], 5: [4, 5]})  # sparse task labels: 0, 2, 5
    h = torch.randn(9, 5)
    labels = torch.tensor([5, 0, 2, 2, 0, 5, 5, 0, 2])
    expected = _literal(heads, h, labels)
    with torch.no_grad():
        torch.testing.assert_close(heads(h, labels), expected)
    torch.testing.assert_close(heads(h, labels), expected)


def test_only_the_heads_in_the_batch_receive_gradient():
    heads = _heads({0: [0, 1], 1: [2, 3], 2: [4, 5]})
    h = torch.randn(4, 5)
    heads(h, torch.tensor([0, 2, 2, 0])).sum().backward()
    assert heads.heads["1"].weight.grad is None  # not even a zero: AdamW would move it
    assert heads.heads["0"].weight.grad is not None and heads.heads["2"].weight.grad is not None

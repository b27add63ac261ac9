"""One linear classification head per task label, added as task labels appear."""

import torch
from avalanche.models import DynamicModule
from torch import Tensor, nn

from ..data import experience_task_labels


class TaskHeads(DynamicModule):
    """h (B, dim), task_labels (B,) -> logits (B, num_classes) from each sample's task head.

    Heads are created in ``adaptation`` for every task label an experience carries, in
    training and evaluation alike (evaluating a task not trained yet uses its fresh head).
    A head only receives gradient from its own task's samples, so old heads stay intact.
    """

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.dim, self.num_classes = dim, num_classes
        self.heads = nn.ModuleDict()

    @torch.no_grad()
    def adaptation(self, experience):
        device = self._adaptation_device if len(list(self.parameters())) else None
        for t in experience_task_labels(experience):
            if str(t) not in self.heads:
                self.heads[str(t)] = nn.Linear(self.dim, self.num_classes).to(device)

    def managed_parameters(self) -> list[nn.Parameter]:
        """Every head: each sees only its own task's samples, so none is shared."""
        return list(self.parameters())

    def forward(self, h: Tensor, task_labels: Tensor) -> Tensor:
        out = h.new_empty(h.shape[0], self.num_classes)
        for t in task_labels.unique().tolist():
            if str(t) not in self.heads:
                raise ValueError(f"no head for task label {t}; heads exist for {list(self.heads)}")
            mask = task_labels == t
            out[mask] = self.heads[str(t)](h[mask])
        return out

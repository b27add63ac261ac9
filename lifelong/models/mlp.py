"""An MLP classifier whose hidden FFN is pluggable (PEER, dense, or any expert layer)."""

from torch import Tensor, nn

from .growing import GrowingExperts
from .heads import TaskHeads
from .task_model import TaskModel


class MLPClassifier(TaskModel):
    """x (B, *input_shape) -> logits (B, num_classes).

    ``stem`` (Linear + ReLU, or nothing with ``stem=False``) -> residual FFN block
    ``h + ffn(h, task_labels)`` -> head.
    ``head="multi"`` gives one head per task label (the usual task-IL setup), or per
    experience when the FFN infers the experience (``routing="inferred"``); ``"single"``
    one shared head.
    """

    def __init__(
        self,
        *,
        in_features: int,
        num_classes: int,
        dim: int,
        ffn: GrowingExperts,
        head: str = "single",
        stem: bool = True,
    ):
        super().__init__()
        if head not in ("single", "multi"):
            raise ValueError(f"head={head!r} is not supported; choose 'single' or 'multi'")
        if not stem and in_features != dim:
            raise ValueError(f"model.stem=false needs model.dim == input features ({in_features})")
        # Without a stem the expert layer reads the input itself: nothing shared but the
        # (frozen) query network and the per-task heads stands between tasks.
        layers = [nn.Flatten(), nn.Linear(in_features, dim), nn.ReLU()] if stem else [nn.Flatten()]
        self.stem = nn.Sequential(*layers)
        self.ffn = ffn
        self.multi_head = head == "multi"
        # With inferred routing the heads go by the inferred experience, as the experts do.
        per_experience = ffn.routing == "inferred"
        self.head = (
            TaskHeads(dim, num_classes, per_experience=per_experience)
            if self.multi_head
            else nn.Linear(dim, num_classes)
        )

    def forward(self, x: Tensor, task_labels: Tensor | None = None):
        """x (B, ...), task_labels (B,) -> logits (B, num_classes); without task labels,
        a dict {task label: logits} over the tasks trained so far (as Avalanche expects)."""
        if task_labels is None:  # Avalanche's MultiTaskModule contract: {task: output}
            return self.forward_all_tasks(x)
        h = self.stem(x)  # (B, dim)
        ids = self.ffn.task_ids(h, task_labels)  # (B,) task labels, or inferred experiences
        h = h + self.ffn(h, ids=ids)
        return self.head(h, ids) if self.multi_head else self.head(h)

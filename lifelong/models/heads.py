"""One linear classification head per task label, added as task labels appear, each masked
to its task's classes."""

import torch
from avalanche.models import DynamicModule
from torch import Tensor, nn

from ..data import experience_task_labels

# The logit of a class outside a head's task: far below any real logit, so its probability
# is exactly 0 in float32 (exp underflows below -104), yet finite, so that log-softmaxes
# and KL divergences between two masked heads stay finite where -inf would give NaN.
MASKED_LOGIT = -1e4


class MaskedHead(nn.Linear):
    """A task's head: a Linear over all classes whose output outside the task's classes
    (``allowed``, a (num_classes,) bool buffer) is ``MASKED_LOGIT``. It starts at zero, so
    before training it gives every allowed class the same logit and predicts the first:
    on a balanced task that is chance, the baseline forward transfer needs (a random head
    can land far from chance by correlating with the classes)."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__(dim, num_classes)
        with torch.no_grad():  # after nn.Linear's init: the generator advances as before
            self.weight.zero_()
            self.bias.zero_()
        self.register_buffer("allowed", torch.zeros(num_classes, dtype=torch.bool))

    def forward(self, h: Tensor) -> Tensor:
        return super().forward(h).masked_fill(~self.allowed, MASKED_LOGIT)  # (B, C)


class TaskHeads(DynamicModule):
    """h (B, dim), task_labels (B,) -> logits (B, num_classes) from each sample's task head.

    Heads are created in ``adaptation`` for every task label an experience carries, in
    training and evaluation alike (evaluating a task not trained yet uses its fresh head),
    and each is masked to the classes its experiences have shown it: task-IL predicts among
    the task's classes, so an untrained head scores at chance and forward transfer has a
    meaningful baseline (docs/design.md §5). A head only receives gradient from its own
    task's samples, so old heads stay intact.
    """

    def __init__(self, dim: int, num_classes: int, *, per_experience: bool = False):
        super().__init__()
        self.dim, self.num_classes = dim, num_classes
        # Keyed by experience instead of task label: with inferred routing every experience
        # is a task whose id the model infers, and its head predicts among its classes.
        self.per_experience = per_experience
        self.heads = nn.ModuleDict()

    @torch.no_grad()
    def adaptation(self, experience):
        device = self._adaptation_device if len(list(self.parameters())) else None
        classes = getattr(experience, "classes_in_this_experience", None)
        if self.per_experience:
            keys = [int(experience.current_experience)]
        else:
            keys = experience_task_labels(experience)
        for t in keys:
            if str(t) not in self.heads:
                self.heads[str(t)] = MaskedHead(self.dim, self.num_classes).to(device)
            allowed = self.heads[str(t)].allowed
            if classes is None:  # a stream without class information: every class
                allowed.fill_(True)
            else:
                allowed[torch.as_tensor(sorted(classes), device=allowed.device)] = True

    def managed_parameters(self) -> list[nn.Parameter]:
        """Every head: each sees only its own task's samples, so none is shared."""
        return list(self.parameters())

    def active_params_per_token(self) -> int:
        """One head: a sample goes through the head of its task only."""
        return max((sum(p.numel() for p in h.parameters()) for h in self.heads.values()), default=0)

    def forward(self, h: Tensor, task_labels: Tensor) -> Tensor:
        labels = task_labels.unique().tolist()
        missing = [t for t in labels if str(t) not in self.heads]
        if missing:
            raise ValueError(
                f"no head for task label {missing[0]}; heads exist for {list(self.heads)}"
            )
        if len(labels) > 1 and not torch.is_grad_enabled():
            return self._every_head(h, task_labels)
        # One head at a time where gradients flow: a head outside the batch must get no
        # gradient at all (a zero one would still move it through AdamW's moments).
        out = h.new_empty(h.shape[0], self.num_classes)
        for t in labels:
            mask = task_labels == t
            out[mask] = self.heads[str(t)](h[mask])
        return out

    def _every_head(self, h: Tensor, task_labels: Tensor) -> Tensor:
        """Without gradients, a batch mixing tasks (inferred routing) in one product with
        every head's weights, (B, dim) @ (dim, H·C), then each row's own head picked: a
        constant number of operations instead of a few per task present."""
        names = list(self.heads)
        weight = torch.cat([self.heads[n].weight for n in names])  # (H·C, dim)
        bias = torch.cat([self.heads[n].bias for n in names])  # (H·C,)
        allowed = torch.stack([self.heads[n].allowed for n in names])  # (H, C)
        position = torch.full((max(map(int, names)) + 1,), -1, dtype=torch.long)
        position[[int(n) for n in names]] = torch.arange(len(names))
        row = position.to(task_labels.device)[task_labels]  # (B,) index into the heads
        logits = (h @ weight.T + bias).view(h.shape[0], len(names), self.num_classes)
        picked = logits[torch.arange(h.shape[0], device=h.device), row]  # (B, C)
        return picked.masked_fill(~allowed[row], MASKED_LOGIT)

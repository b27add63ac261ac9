"""The Avalanche multi-task contract shared by this package's models."""

import torch
from avalanche.models import MultiTaskModule
from torch import Tensor

from ..data import experience_task_labels


class TaskModel(MultiTaskModule):
    """A ``MultiTaskModule`` whose ``forward(x, task_labels)`` handles a whole mixed batch.

    Avalanche calls ``forward(x, None)`` (LwF, for instance) to get ``{task: output}`` over
    the tasks trained so far; ``forward_all_tasks`` builds that from
    ``forward_single_task``, defined here in terms of the subclass's ``forward``.
    """

    def adaptation(self, experience):
        # MultiTaskModule.adaptation also reads classes_in_this_experience, which a
        # language-model stream does not have; only the task labels matter here.
        if self.training:
            self.known_train_tasks_labels |= set(experience_task_labels(experience))

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        labels = torch.full((x.shape[0],), task_label, dtype=torch.long, device=x.device)
        return self.forward(x, labels)

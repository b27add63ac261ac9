"""A replay memory that a checkpoint can hold: Avalanche's experience-balanced reservoir,
remembered as sample indices instead of dataset objects.

Avalanche's ``ExperienceBalancedBuffer`` (``adaptive_size=True``) splits the memory equally
over the experiences seen and keeps, per experience, the samples with the largest of one
uniform random weight each, i.e. a uniform random subset; shrinking a group keeps its
best-ranked samples. This class draws the same thing as a random permutation per
experience, and stores only the permutations: the buffer dataset is rebuilt from the
stream, so a checkpoint carries (n,) index tensors rather than pickled datasets.
It is meant for ``avalanche.training.plugins.ReplayPlugin(storage_policy=...)``.
"""

import torch
from avalanche.benchmarks.utils import concat_datasets
from avalanche.training.storage_policy import ExemplarsBuffer
from torch import Tensor


def group_sizes(max_size: int, groups: int) -> list[int]:
    """``max_size`` split over ``groups``; the first ``max_size % groups`` get one more
    (Avalanche's ``BalancedExemplarsBuffer.get_group_lengths``)."""
    base, extra = divmod(max_size, groups)
    return [base + (1 if g < extra else 0) for g in range(groups)]


class IndexedExperienceBuffer(ExemplarsBuffer):
    """Experience-balanced replay memory of at most ``max_size`` samples.

    Attributes:
        rankings: experience id -> (n_e,) permutation of its sample indices; the first
            ``group_sizes(...)[g]`` of them are in the buffer.
    """

    def __init__(self, max_size: int):
        super().__init__(max_size)
        self.rankings: dict[int, Tensor] = {}
        self._datasets: dict[int, object] = {}  # experience id -> its training dataset

    def post_adapt(self, agent_state, exp):
        exp_id = int(exp.current_experience)
        self.rankings[exp_id] = torch.randperm(len(exp.dataset))
        self._datasets[exp_id] = exp.dataset
        self._rebuild()

    def update(self, strategy, **kwargs):
        # Avalanche 0.6's ReplayPlugin still calls the deprecated update(); same work.
        self.post_adapt(strategy, strategy.experience)

    def resize(self, strategy, new_size: int):
        self.max_size = new_size
        self._rebuild()

    def _rebuild(self):
        ids = sorted(self.rankings)
        sizes = group_sizes(self.max_size, len(ids)) if ids else []
        parts = [
            self._datasets[e].subset(self.rankings[e][:n].tolist())
            for e, n in zip(ids, sizes, strict=True)
        ]
        self.buffer = concat_datasets(parts)

    # --------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {"max_size": self.max_size, "rankings": dict(self.rankings)}

    def load_state_dict(self, state: dict, *, datasets: dict[int, object]) -> None:
        """``datasets``: experience id -> training dataset, for every id in the state."""
        missing = sorted(set(state["rankings"]) - set(datasets))
        if missing:
            raise ValueError(f"replay buffer: no dataset for experiences {missing}")
        self.max_size = int(state["max_size"])
        self.rankings = {int(e): r for e, r in state["rankings"].items()}
        self._datasets = {e: datasets[e] for e in self.rankings}
        self._rebuild()

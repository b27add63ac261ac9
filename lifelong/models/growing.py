"""A growing layer inside Avalanche: a ``DynamicModule`` wrapper with a growth policy.

Avalanche calls ``adaptation(experience)`` on every ``DynamicModule`` before each training
*and* evaluation experience, then adds new parameters to the optimizer by name
(``make_optimizer`` -> ``update_optimizer``). Growth therefore happens only in training
mode, once per new experience, and the layer's ``grow`` freezes what existed
(docs/design.md §2).

Routing (per sample, from the task labels Avalanche passes to the model):
- ``task_aware``: a sample with task label t uses the experts of the stage t was last
  trained on; an unseen label uses all experts;
- ``task_agnostic``: every sample uses all experts.
"""

import torch
from avalanche.models import DynamicModule
from torch import Tensor, nn

from ..checks import one_of
from ..data import experience_task_labels
from ..layers import GrowingLayer

GROWTH_POLICIES = ("every_experience", "new_task_label", "never")
ROUTINGS = ("task_aware", "task_agnostic")
EXPERT_INITS = ("random", "upcycle")  # what every built-in layer's grow() takes


def grows_at(policy: str, labels: list[int], known: set[int]) -> bool:
    """Whether a (not first) training experience with task ``labels`` grows the layer,
    given the task labels ``known`` from earlier experiences."""
    if policy == "every_experience":
        return True
    return policy == "new_task_label" and any(t not in known for t in labels)


def growths_over(policy: str, labels_per_experience: list[list[int]]) -> int:
    """How often ``GrowingExperts(policy=...)`` grows over training experiences with these
    task labels, in order (the first experience never grows: it trains stage 0)."""
    known, growths = set(), 0
    for i, labels in enumerate(labels_per_experience):
        growths += i > 0 and grows_at(policy, labels, known)
        known.update(labels)
    return growths


class GrowingExperts(DynamicModule):
    """Wraps a ``GrowingLayer``; forward takes ``(x, task_labels)``.

    Args:
        layer: the growing layer (``lifelong.layers.LAYERS`` builds them).
        policy: when to grow: "every_experience", "new_task_label" or "never".
        grow_size: what each growth passes to ``layer.grow``: sub-keys per side for
            PEER/PKM, experts for MoEs, hidden units for ``DenseFFN`` (None: as many as
            its first stage).
        init: initialisation of new experts, "random" or "upcycle".
        routing: "task_aware" or "task_agnostic".
        freeze_query: after the first experience, freeze what routes tokens to every stage
            (``layer.freeze_routing()``: PEER's query network and its BatchNorm statistics).
    """

    def __init__(
        self,
        layer: GrowingLayer,
        *,
        policy: str = "every_experience",
        grow_size: int | None = 8,
        init: str = "random",
        routing: str = "task_aware",
        freeze_query: bool = True,
    ):
        super().__init__()
        if not isinstance(layer, GrowingLayer):
            raise TypeError(f"{type(layer).__name__} is not a GrowingLayer (docs/extending.md)")
        self.layer = layer
        self.policy = one_of("policy", policy, GROWTH_POLICIES)
        self.routing = one_of("routing", routing, ROUTINGS)
        self.init = one_of("init", init, EXPERT_INITS)
        self.grow_size, self.freeze_query = grow_size, freeze_query
        # task label -> stage it was last trained on (-1: never trained). A buffer, so it
        # is saved with the model and the stage mapping survives a checkpoint.
        self.register_buffer("task_stage", torch.full((0,), -1, dtype=torch.long))
        self.register_buffer("trained_experiences", torch.zeros(0, dtype=torch.long))

    @torch.no_grad()
    def adaptation(self, experience):
        if not self.training:
            return  # evaluation experiences never grow the layer
        exp_id = int(experience.current_experience)
        if exp_id in self.trained_experiences.tolist():
            return
        labels = experience_task_labels(experience)
        if self.trained_experiences.numel():  # not the first experience
            known = {t for t in range(self.task_stage.numel()) if int(self.task_stage[t]) >= 0}
            if grows_at(self.policy, labels, known):
                self.layer.grow(self.grow_size, init=self.init)
            if self.freeze_query:
                self.layer.freeze_routing()
        stage = self.layer.num_stages - 1
        for t in labels:
            if t >= self.task_stage.numel():
                pad = torch.full((t + 1 - self.task_stage.numel(),), -1, dtype=torch.long)
                self.task_stage = torch.cat([self.task_stage, pad.to(self.task_stage.device)])
            self.task_stage[t] = stage
        self.trained_experiences = torch.cat(
            [self.trained_experiences, torch.tensor([exp_id], device=self.task_stage.device)]
        )

    def managed_parameters(self) -> list[nn.Parameter]:
        """The layer's parameters, unless the policy never grows it and it never grew: a
        layer without stages to protect is an ordinary shared layer."""
        if self.policy == "never" and self.layer.num_stages == 1:
            return []
        return self.layer.managed_parameters()

    def stages_for(self, task_labels: Tensor | None) -> Tensor | None:
        """Per-sample stage for task-aware routing, None for all experts."""
        if self.routing == "task_agnostic" or task_labels is None:
            return None
        if self.task_stage.numel() == 0:
            return None
        latest = self.layer.num_stages - 1
        labels = task_labels.to(self.task_stage.device).long()
        known = labels < self.task_stage.numel()
        stage = torch.full_like(labels, latest)
        stage[known] = self.task_stage[labels[known]]
        return torch.where(stage < 0, torch.full_like(stage, latest), stage)

    def forward(self, x: Tensor, task_labels: Tensor | None = None) -> Tensor:
        """x (B, ..., dim); task_labels (B,) or None."""
        return self.layer(x, stage=self.stages_for(task_labels))

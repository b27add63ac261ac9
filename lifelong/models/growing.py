"""An expert layer that grows inside Avalanche: a ``DynamicModule`` wrapper with a policy.

Avalanche calls ``adaptation(experience)`` on every ``DynamicModule`` before each training
*and* evaluation experience, then adds new parameters to the optimizer by name
(``make_optimizer`` -> ``update_optimizer``). Growth therefore happens only in training
mode, once per new experience, and the layer's ``grow`` freezes what existed (BRIEF §5).

Routing (per sample, from the task labels Avalanche passes to the model):
- ``task_aware``: a sample with task label t uses the experts of the stage t was last
  trained on; an unseen label uses all experts;
- ``task_agnostic``: every sample uses all experts.
"""

import torch
from avalanche.models import DynamicModule
from torch import Tensor, nn

GROWTH_POLICIES = ("every_experience", "new_task_label", "never")
ROUTINGS = ("task_aware", "task_agnostic")


def experience_task_labels(experience) -> list[int]:
    """The task labels of an experience, also for benchmarks without a task timeline."""
    labels = getattr(experience, "task_labels", None)
    if labels is None:
        per_sample = getattr(experience.dataset, "targets_task_labels", None)
        labels = sorted({int(t) for t in per_sample}) if per_sample is not None else [0]
    return [int(t) for t in labels]


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
    """Wraps an expert layer with ``forward(x, stage)``, ``grow(m, init=...)`` and
    ``num_stages`` (e.g. ``PEER``); forward takes ``(x, task_labels)``.

    Args:
        layer: the expert layer.
        policy: when to grow: "every_experience", "new_task_label" or "never".
        grow_size: what each growth adds: sub-keys per side for PEER/PKM, experts for MoEs,
            hidden units for ``DenseFFN``.
        init: initialisation of new experts, "random" or "upcycle".
        routing: "task_aware" or "task_agnostic".
        freeze_query: after the first experience, freeze the query network, its BatchNorm
            running statistics included.
    """

    def __init__(
        self,
        layer: nn.Module,
        *,
        policy: str = "every_experience",
        grow_size: int = 8,
        init: str = "random",
        routing: str = "task_aware",
        freeze_query: bool = True,
    ):
        super().__init__()
        if policy not in GROWTH_POLICIES:
            raise ValueError(f"policy={policy!r} is not supported; choose one of {GROWTH_POLICIES}")
        if routing not in ROUTINGS:
            raise ValueError(f"routing={routing!r} is not supported; choose one of {ROUTINGS}")
        self.layer = layer
        self.policy, self.grow_size, self.init = policy, grow_size, init
        self.routing, self.freeze_query = routing, freeze_query
        # task label -> stage it was last trained on (-1: never trained). A buffer, so it
        # is saved with the model and the stage mapping survives a checkpoint.
        self.register_buffer("task_stage", torch.full((0,), -1, dtype=torch.long))
        self.register_buffer("trained_experiences", torch.zeros(0, dtype=torch.long))
        self.register_buffer("query_frozen", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def adaptation(self, experience):
        if not self.training:
            return  # evaluation experiences never grow the layer
        exp_id = int(experience.current_experience)
        if exp_id in self.trained_experiences.tolist():
            return
        labels = experience_task_labels(experience)
        first = self.trained_experiences.numel() == 0
        if not first and self._should_grow(labels):
            self.layer.grow(self.grow_size, init=self.init)
        if not first and self.freeze_query:
            self._freeze_query()
        stage = getattr(self.layer, "num_stages", 1) - 1
        for t in labels:
            if t >= self.task_stage.numel():
                pad = torch.full((t + 1 - self.task_stage.numel(),), -1, dtype=torch.long)
                self.task_stage = torch.cat([self.task_stage, pad.to(self.task_stage.device)])
            self.task_stage[t] = stage
        self.trained_experiences = torch.cat(
            [self.trained_experiences, torch.tensor([exp_id], device=self.task_stage.device)]
        )

    def _should_grow(self, labels: list[int]) -> bool:
        if not hasattr(self.layer, "grow"):
            return False  # a layer without grow() (the transformer's plain MLP) never grows
        known = {t for t in range(self.task_stage.numel()) if int(self.task_stage[t]) >= 0}
        return grows_at(self.policy, labels, known)

    def _freeze_query(self):
        query = getattr(self.layer, "query", None)
        if query is None or bool(self.query_frozen):
            return
        query.requires_grad_(False)
        for p in query.parameters():
            p.grad = None
        query.eval()
        self.query_frozen.fill_(True)

    def train(self, mode: bool = True):
        super().train(mode)
        if bool(self.query_frozen):
            self.layer.query.eval()  # frozen BatchNorm statistics stay frozen
        return self

    def stages_for(self, task_labels: Tensor | None) -> Tensor | None:
        """Per-sample stage for task-aware routing, None for all experts."""
        if self.routing == "task_agnostic" or task_labels is None:
            return None
        if self.task_stage.numel() == 0 or not hasattr(self.layer, "num_stages"):
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

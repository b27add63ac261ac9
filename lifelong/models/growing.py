"""A growing layer inside Avalanche: a ``DynamicModule`` wrapper with a growth policy.

Avalanche calls ``adaptation(experience)`` on every ``DynamicModule`` before each training
*and* evaluation experience, then adds new parameters to the optimizer by name
(``make_optimizer`` -> ``update_optimizer``). Growth therefore happens only in training
mode, once per new experience, and the layer's ``grow`` freezes what existed
(docs/design.md §2).

Routing (per sample, from the task labels Avalanche passes to the model):
- ``task_aware``: a sample with task label t uses the experts of the stage t was last
  trained on; an unseen label uses all experts;
- ``task_agnostic``: every sample uses all experts;
- ``inferred``: no task label is read. Each experience is its own "task": in training a
  sample uses the stage of the experience being trained; in evaluation a ``selector``
  (``selectors``) infers the experience each sample most likely comes from, from the
  layer's input, and the sample uses that experience's stage (docs/task_inference.md).
  With ``causal=True`` the inputs are sequences (B, T, d) and token t's experience is
  inferred from tokens 0..t only (a running sum of the selector's scores), so nothing
  later in a window chooses how an earlier byte is predicted.
"""

import contextlib
from collections import OrderedDict
from collections.abc import Callable

import torch
from avalanche.models import DynamicModule
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..checks import one_of
from ..data import experience_task_labels
from ..layers import GrowingLayer

GROWTH_POLICIES = ("every_experience", "new_task_label", "never")
ROUTINGS = ("task_aware", "task_agnostic", "inferred")
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


@contextlib.contextmanager
def routed_as_trained(model: nn.Module, experience: int):
    """Route every inferring ``GrowingExperts`` of ``model`` to ``experience``'s stage: for
    passes over the data of the experience just trained (selector statistics, a
    regulariser's Fisher), which must see the model as training did, not as the selector
    would guess it."""
    with contextlib.ExitStack() as stack:
        for m in model.modules():
            if isinstance(m, GrowingExperts) and m.routing == "inferred":
                stack.enter_context(m.routed_to(experience))
        yield model


class GrowingExperts(DynamicModule):
    """Wraps a ``GrowingLayer``; forward takes ``(x, task_labels)``.

    Args:
        layer: the growing layer (``lifelong.layers.LAYERS`` builds them).
        policy: when to grow: "every_experience", "new_task_label" or "never".
        grow_size: what each growth passes to ``layer.grow``: sub-keys per side for
            PEER/PKM, experts for MoEs, hidden units for ``DenseFFN`` (None: as many as
            its first stage).
        init: initialisation of new experts, "random" or "upcycle".
        routing: "task_aware", "task_agnostic" or "inferred".
        freeze_query: after the first experience, freeze what routes tokens to every stage
            (``layer.freeze_routing()``: PEER's query network and its BatchNorm statistics).
        selector: for (and only for) routing="inferred", the ``selectors`` module that
            scores the experiences a sample may come from; its statistics are filled by
            ``lifelong.plugins.StageStatisticsPlugin`` after each training experience.
        causal: inputs are (B, T, d) sequences whose token t may only use tokens 0..t.
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
        selector: nn.Module | None = None,
        causal: bool = False,
    ):
        super().__init__()
        if not isinstance(layer, GrowingLayer):
            raise TypeError(f"{type(layer).__name__} is not a GrowingLayer (docs/extending.md)")
        self.layer = layer
        self.policy = one_of("policy", policy, GROWTH_POLICIES)
        self.routing = one_of("routing", routing, ROUTINGS)
        self.init = one_of("init", init, EXPERT_INITS)
        self.grow_size, self.freeze_query = grow_size, freeze_query
        if (self.routing == "inferred") != (selector is not None):
            raise ValueError(
                f"routing={routing!r}: a selector goes with routing='inferred', and only with it"
            )
        self.selector, self.causal = selector, causal
        # task label (inferred routing: experience) -> stage it was last trained on (-1:
        # never trained). A buffer, so the stage mapping survives a checkpoint.
        self.register_buffer("task_stage", torch.full((0,), -1, dtype=torch.long))
        self.register_buffer("trained_experiences", torch.zeros(0, dtype=torch.long))
        self._inference_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._forced: int | None = None  # route every sample to this experience

    @torch.no_grad()
    def adaptation(self, experience):
        if not self.training:
            return  # evaluation experiences never grow the layer
        exp_id = int(experience.current_experience)
        if exp_id in self.trained_experiences.tolist():
            return
        inferred = self.routing == "inferred"
        labels = [exp_id] if inferred else experience_task_labels(experience)
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

    def task_ids(
        self, x: Tensor, task_labels: Tensor | None, tokens: Tensor | None = None
    ) -> Tensor | None:
        """What the layer routes by: the task labels (B,), or for inferred routing one
        experience id per sample, or per token if causal: the experience being trained
        (training), else the likeliest experience (evaluation). ``tokens``: the model's
        input bytes (B, T), for selectors that read them."""
        if self.routing != "inferred":
            return task_labels
        batch = x.shape[:2] if self.causal else x.shape[:1]
        seen = self.trained_experiences
        if self._forced is None and not self.training and seen.numel():
            ids = self.infer(x, tokens)
            for hook in self._inference_hooks.values():
                hook(self, ids)
            return ids
        # Forced, or training: the experience being trained, the last one adapted to (0
        # before any: the sum of an empty slice).
        experience = self._forced if self._forced is not None else int(seen[-1:].sum())
        return torch.full(batch, experience, dtype=torch.long, device=x.device)

    @torch.no_grad()
    def infer(self, x: Tensor, tokens: Tensor | None = None) -> Tensor:
        """(B, d) or causal (B, T, d) inputs -> (B,) or (B, T) likeliest experiences."""
        context = {"layer": self.layer, "stage_of": self.task_stage, "tokens": tokens}
        scores = self.selector.scores(x, **context)
        if scores.shape[-1] == 0:  # no statistics yet: the experience being trained
            return torch.full(scores.shape[:-1], int(self.trained_experiences[-1]), device=x.device)
        if self.causal:  # (B, T, E): token t weighs the evidence of tokens 0..t
            scores = scores.cumsum(1)
        return scores.argmax(-1)

    @contextlib.contextmanager
    def routed_to(self, experience: int):
        """Route every sample to ``experience``'s stage, in training and evaluation alike
        (the statistics pass after an experience sees it as training did)."""
        self._forced = experience
        try:
            yield self
        finally:
            self._forced = None

    def register_inference_hook(self, hook: Callable[[nn.Module, Tensor], None]):
        """Call ``hook(module, ids)`` with the experiences inferred in each evaluation
        forward. Returns a handle whose ``remove()`` unhooks."""
        handle = RemovableHandle(self._inference_hooks)
        self._inference_hooks[handle.id] = hook
        return handle

    def forward(
        self, x: Tensor, task_labels: Tensor | None = None, *, ids=None, tokens=None
    ) -> Tensor:
        """x (B, ..., dim); task_labels (B,) or None; ``ids`` from ``task_ids``, when the
        caller needs them too (per-experience heads); ``tokens`` (B, T) input bytes."""
        ids = self.task_ids(x, task_labels, tokens) if ids is None else ids
        return self.layer(x, stage=self.stages_for(ids))

"""Generative distillation of the old stages (``gen_distill``), for byte language models
with inferred routing.

Every stage of a growing byte LM is a complete generative model of the text it was
trained on. At the end of experience e this regulariser samples ``samples`` windows from
stage e (temperature 1, the first byte drawn from e's byte histogram), and keeps a frozen
copy of the model. On every later training step it draws one old stage s, runs s on a
minibatch of s's own samples in the model and in the copy, and pulls their next-byte
distributions together:

    penalty = T² · mean over tokens of KL( softmax(copy_s / T) || softmax(model_s / T) )

This is generative replay (Shin et al. 2017; for language models LAMOL, Sun et al. 2020)
used for distillation (Li & Hoiem 2017, Eq. 2): the old stages are checked on text like
their own, not on the new domain's bytes, so the shared parameters may move wherever that
keeps each old stage's predictions, instead of staying near their old values (``l2``).
No training sample is kept: the windows are the model's own writing, ``samples`` × the
window length bytes per stage. The cost per step is two extra forwards of ``batch``
windows and one backward (docs/plasticity.md).
"""

from contextlib import contextmanager

import torch
from avalanche.models.utils import avalanche_forward
from torch import Tensor, nn

from ..checks import positive_int
from ..models.growing import GrowingExperts, routed_as_trained
from .base import ExperienceData, Regularizer
from .distill import distillation_kl, frozen_copy

BYTES = 256


@contextmanager
def router_mass_kept(model: nn.Module):
    """Training forwards inside leave every expert layer's ``router_mass`` as it was. The
    mass ranks experts for upcycling by their use on the experience being trained; the
    old stages' own writing, replayed here, is not that experience."""
    kept = [(b, b.clone()) for name, b in model.named_buffers() if name.endswith("router_mass")]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in kept:
                buffer.copy_(value)


class GenerativeDistillation(Regularizer):
    """Args:
    samples: windows sampled from each stage at the end of its experience.
    batch: sampled windows per training step (of one old stage, drawn at random).
    temperature: T of the distillation's softened softmax.
    seed: of the regulariser's own generator (sampling and draws), so a run's global
        random stream is the same with or without it.
    """

    def __init__(self, samples: int = 256, batch: int = 32, temperature: float = 1.0, seed=0):
        self.samples = positive_int("samples", samples)
        self.batch = positive_int("batch", batch)
        if not temperature > 0:
            raise ValueError(f"gen_distill temperature={temperature} must be > 0")
        self.temperature = float(temperature)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.pools: dict[int, Tensor] = {}  # stage -> (samples, T) sampled bytes, int64, CPU
        self.previous: nn.Module | None = None  # frozen copy, in eval mode

    def penalty(self, model: nn.Module, *, x, task_labels: Tensor, output: Tensor) -> Tensor:
        if self.previous is None:
            return output.new_zeros(())
        stages = sorted(self.pools)
        stage = stages[self._draw(len(stages), 1)[0]]
        pool = self.pools[stage]
        windows = pool[self._draw(len(pool), self.batch)].to(x.device)  # (batch, T)
        labels = torch.zeros(len(windows), dtype=torch.long, device=x.device)  # not read
        with torch.no_grad(), routed_as_trained(self.previous, stage):
            target = avalanche_forward(self.previous, windows, labels)
        with routed_as_trained(model, stage), router_mass_kept(model):
            current = avalanche_forward(model, windows, labels)
        return distillation_kl(current, target, self.temperature)

    def after_experience(self, model: nn.Module, data: ExperienceData) -> None:
        self.previous = frozen_copy(model)
        stage = _last_trained(model)
        histogram, length = torch.zeros(BYTES, dtype=torch.float64), 0
        for x, _, _ in data.batches():
            histogram += torch.bincount(x.reshape(-1).cpu().long(), minlength=BYTES)
            length = x.shape[1]
        self.pools[stage] = self._sample(stage, histogram + 0.5, length)

    @torch.no_grad()
    def _sample(self, stage: int, histogram: Tensor, length: int) -> Tensor:
        """(samples, length) bytes written by ``stage`` of the frozen copy, one byte at a
        time: byte t+1 is drawn from the stage's prediction after bytes 0..t."""
        device = next(self.previous.parameters()).device
        first = torch.multinomial(
            histogram, self.samples, replacement=True, generator=self.generator
        )
        x = first[:, None]  # (samples, 1)
        labels = torch.zeros(self.samples, dtype=torch.long, device=device)
        with routed_as_trained(self.previous, stage):
            for _ in range(length - 1):
                logits = avalanche_forward(self.previous, x.to(device), labels)[:, -1]  # (S, V)
                probs = torch.softmax(logits.float().cpu(), -1)
                x = torch.cat([x, torch.multinomial(probs, 1, generator=self.generator)], 1)
        return x

    def _draw(self, high: int, n: int) -> list[int]:
        return torch.randint(high, (n,), generator=self.generator).tolist()

    def state_dict(self) -> dict:
        state = {k: v for k, v in vars(self).items() if k not in ("previous", "generator")}
        state["generator"] = self.generator.get_state()
        state["previous"] = None if self.previous is None else self.previous.state_dict()
        return state

    def load_state_dict(self, state: dict, *, model: nn.Module) -> None:
        # As DistillationRegularizer: the copy had the architecture the model has now.
        state = dict(state)
        weights = state.pop("previous")
        self.generator.set_state(state.pop("generator"))
        vars(self).update(state)
        self.previous = None
        if weights is not None:
            self.previous = frozen_copy(model)
            self.previous.load_state_dict(weights)


def _last_trained(model: nn.Module) -> int:
    """The experience the inferring ``GrowingExperts`` of ``model`` trained last."""
    for m in model.modules():
        if isinstance(m, GrowingExperts) and m.routing == "inferred":
            return int(m.trained_experiences[-1])
    raise ValueError(
        "train.regularizer=gen_distill samples each stage's own text: it needs a byte "
        "language model with growth.routing=inferred"
    )

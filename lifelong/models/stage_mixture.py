"""A byte language model's stages mixed by their posterior given the prefix.

With inferred routing every experience trained its own stage, and a stage is a complete
next-byte predictor p_e(x_{t+1} | x_0..x_t). Instead of routing byte t to the one stage a
selector guesses, the Bayes mixture weighs every stage by how well it predicted the bytes
before:

    p(x_{t+1} | x_{<=t}) = Σ_e w_e(t) · p_e(x_{t+1} | x_{<=t}),
    w_e(t) ∝ Π_{u<t} p_e(x_{u+1} | x_{<=u})          (uniform prior over experiences)

the sequential Bayes mixture of experts' predictions, whose log-loss exceeds the best
stage's in hindsight by at most log E over the whole window (Cesa-Bianchi & Lugosi,
*Prediction, Learning, and Games*, 2006, §3.3 and §9). It is causal (w_e(t) reads
x_1..x_t only) and stores nothing, but it runs the model once per trained experience: E
times the compute of one routed forward.
"""

import torch
from avalanche.models.utils import avalanche_forward
from torch import Tensor, nn

from .growing import GrowingExperts, routed_as_trained


def trained_experiences(model: nn.Module) -> list[int]:
    """The experiences the inferring ``GrowingExperts`` of ``model`` were trained on."""
    layers = [
        m for m in model.modules() if isinstance(m, GrowingExperts) and m.selector is not None
    ]
    if not layers:
        raise ValueError(
            "the stage mixture needs a model with inferred routing (growth.routing=inferred)"
        )
    return sorted(int(e) for e in layers[0].trained_experiences.tolist())


@torch.no_grad()
def stage_mixture_log_probs(model: nn.Module, x: Tensor, task_labels: Tensor) -> Tensor:
    """(B, T) bytes -> (B, T, V) log p(x_{t+1} | x_{<=t}) of the posterior mixture over the
    trained experiences' stages (usable as logits: they are normalised log-probabilities)."""
    assert x.dim() == 2, f"x has shape {tuple(x.shape)}; expected (B, T) bytes"
    stages = []
    for e in trained_experiences(model):
        with routed_as_trained(model, e):
            stages.append(torch.log_softmax(avalanche_forward(model, x, task_labels).float(), -1))
    log_p = torch.stack(stages)  # (E, B, T, V)
    # log p_e of the byte that came next, for positions 0..T-2 (position T-1's is unknown)
    seen = log_p[:, :, :-1].gather(-1, x[None, :, 1:, None].long().expand(len(stages), -1, -1, 1))
    evidence = torch.cat([seen.new_zeros(*seen.shape[:2], 1), seen[..., 0].cumsum(-1)], -1)
    weights = torch.log_softmax(evidence, 0)  # (E, B, T): log w_e(t), from x_1..x_t only
    return torch.logsumexp(weights[..., None] + log_p, 0)  # (B, T, V)

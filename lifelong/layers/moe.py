"""Token-choice MoE: Switch (top-1) and GShard/Mixtral (top-2), with capacity and growth.

A softmax router scores the N experts for every token and sends it to its top-k
(docs/design.md §3). Each expert has ``C = round(capacity_factor · T / N)`` slots for the T tokens
of a batch; the k·T assignments fill them first choices first, each in token order, and
an assignment past an expert's C-th slot is *dropped*: it contributes nothing, and the
token passes on through the residual connection outside the layer. Note that GShard and
megablocks give each expert k·C slots instead; pass ``capacity_factor = k·CF`` for that.

Load balancing (Switch Transformer, Fedus et al. 2021, Eq. 4-6):
``aux = α · N · Σ_i f_i · P_i``, f_i the fraction of tokens whose first choice is i (before
dropping), P_i the router probability of i averaged over the tokens. It is 1·α for a
perfectly balanced router and N·α when one expert takes everything.
"""

import torch
from torch import Tensor

from ..checks import non_negative_number, positive_int, positive_number
from .moe_common import StagedMoE, capacity


def capacity_mask(top: Tensor, slots: int, experts: int) -> Tensor:
    """(M, k) expert choices -> (M, k) bool, True where the assignment got a slot.

    Priority: every token's first choice in token order, then every second choice, ...
    (Switch/GShard dispatch order); expert e keeps its first ``slots`` assignments."""
    M, k = top.shape
    order = top.t().reshape(-1)  # (k*M,) in priority order
    perm = torch.argsort(order, stable=True)  # grouped by expert, priority kept within
    grouped = order[perm]
    counts = torch.bincount(grouped, minlength=experts)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.empty_like(order)
    position[perm] = torch.arange(order.numel(), device=top.device) - starts[grouped]
    keep = (position < slots).view(k, M).t()
    assert keep.shape == top.shape
    return keep


class TokenChoiceMoE(StagedMoE):
    """Token-choice top-k MoE (..., dim) -> (..., dim) with growth.

    Args:
        dim: model width.
        num_experts: initial expert count N (>= topk).
        hidden: each expert is an FFN dim -> hidden -> dim without biases.
        topk: experts per token; 1 is Switch, 2 GShard/Mixtral. Combine weights: with k=1
            the router probability p_i of the chosen expert (Switch; a weight of 1 would
            give the router no gradient); with k >= 2 the chosen probabilities
            renormalised to sum to 1 (Mixtral), before any dropping.
        capacity_factor: CF > 0 in ``C = round(CF · T / N)`` slots per expert (rounded half
            up, at least 1), N the experts the batch may use; it applies in training and
            evaluation alike. None: no capacity, no token is ever dropped.
        aux_loss_weight: α >= 0 of the Switch load-balancing loss.
        random_second: GShard's random routing (Lepikhin et al. 2020): in training the second expert
            is drawn at random in proportion to its router probability among the experts
            other than the first (torch's global RNG, so ``torch.manual_seed`` fixes it);
            in evaluation it is the second best. Needs topk=2.
        activation: expert non-linearity, "gelu" or "relu".

    After a forward ``self.aux_loss`` holds the balancing loss (a 0-dim tensor with grad)
    that the training loop adds to its loss.
    """

    routing = "token_choice"

    def __init__(
        self,
        dim: int,
        *,
        num_experts: int,
        hidden: int,
        topk: int = 1,
        capacity_factor: float | None = 1.25,
        aux_loss_weight: float = 0.01,
        random_second: bool = False,
        activation: str = "gelu",
    ):
        positive_int("num_experts", num_experts)
        positive_int("topk", topk)
        if topk > num_experts:
            raise ValueError(
                f"topk={topk} exceeds num_experts={num_experts}; choose 1 <= topk <= {num_experts}"
            )
        if capacity_factor is not None:
            capacity_factor = positive_number("capacity_factor", capacity_factor)
        aux_loss_weight = non_negative_number("aux_loss_weight", aux_loss_weight)
        if random_second and topk != 2:
            raise ValueError(f"random_second=True needs topk=2 (got topk={topk})")
        super().__init__(dim, num_experts=num_experts, hidden=hidden, activation=activation)
        self.topk = topk
        self.capacity_factor = capacity_factor
        self.aux_loss_weight = float(aux_loss_weight)
        self.random_second = bool(random_second)

    def active_params_per_token(self) -> int:
        """The router (dim per expert) plus topk experts of 2·dim·hidden weights."""
        return self.dim * self.num_experts + self.topk * 2 * self.dim * self.hidden

    def _dispatch(self, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(M, n) logits -> (M, k) expert ids (-1: dropped), (M, k) combine weights, aux."""
        M, n = logits.shape
        probs = torch.softmax(logits, dim=-1)  # (M, n); 0 where the logit is -inf
        # Rank by logits, not probabilities: an allowed expert whose probability underflows
        # to 0 must still win against a masked (later-stage) one.
        top = self._choose(logits, probs)  # (M, k)
        gates = probs.gather(1, top)  # (M, k)
        if self.topk > 1:
            gates = gates / gates.sum(-1, keepdim=True)
        aux = self._balance_loss(probs, top[:, 0])
        if self.capacity_factor is not None:
            keep = capacity_mask(top, capacity(self.capacity_factor, M, n), n)
            top = top.masked_fill(~keep, -1)
            gates = gates.masked_fill(~keep, 0.0)
        return top, gates, aux

    def _choose(self, logits: Tensor, probs: Tensor) -> Tensor:
        if not (self.random_second and self.training):
            return logits.topk(self.topk, dim=-1).indices
        first = logits.argmax(-1)  # (M,)
        rest = probs.detach().scatter(1, first[:, None], 0.0)  # (M, n) without the first
        # Rows whose other probabilities all underflowed take the second best instead.
        empty = rest.sum(-1) <= 0
        best = logits.scatter(1, first[:, None], float("-inf")).argmax(-1)
        rest = torch.where(empty[:, None], torch.ones_like(rest), rest)
        second = torch.where(empty, best, torch.multinomial(rest, 1).squeeze(1))
        return torch.stack([first, second], dim=1)

    def _balance_loss(self, probs: Tensor, first: Tensor) -> Tensor:
        """Switch: α · n · Σ_i f_i · P_i over the n experts the batch may use."""
        M, n = probs.shape
        f = torch.bincount(first, minlength=n).to(probs.dtype) / M  # (n,), no gradient
        P = probs.mean(0)  # (n,)
        return self.aux_loss_weight * n * (f * P).sum()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, topk={self.topk}, capacity_factor={self.capacity_factor}, "
            f"aux_loss_weight={self.aux_loss_weight}, random_second={self.random_second}"
        )

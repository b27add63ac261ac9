"""What every growing layer's ``grow(..., init="upcycle")`` shares: checking the usage that
ranks the existing experts, picking the ones to copy, and the noisy copy itself.

Upcycling (sparse upcycling, Komatsuzaki et al. 2022; docs/design.md §3) starts new
experts as copies of existing ones instead of at random; for growth the copies are of the
most-used experts, by the router mass ``z'_i = Σ_x g_i(x)`` (docs/design.md §4).
"""

import torch
from torch import Tensor


def growth_usage(usage: Tensor | None, *, router_mass: Tensor, what: str = "expert") -> Tensor:
    """The (N,) mass ranking the N existing experts: ``usage`` if given (checked against
    the layer's expert count), else the mass the layer accumulated (``router_mass``)."""
    if usage is None:
        return router_mass
    if tuple(usage.shape) != tuple(router_mass.shape):
        raise ValueError(
            f"usage has shape {tuple(usage.shape)}; expected {tuple(router_mass.shape)}, "
            f"one value per existing {what}"
        )
    return usage


def upcycle_sources(usage: Tensor, count: int, *, device) -> Tensor:
    """(count,) ids of the experts to copy: most used first, cycled over the used ones
    when ``count`` exceeds them (an unused layer copies its first expert)."""
    order = torch.argsort(usage.to(device), descending=True, stable=True)
    used = max(1, int((usage > 0).sum()))
    return order[torch.arange(count, device=device) % used]


def noisy_copy(table: Tensor, src: Tensor, noise: float, *, dim: int = 0) -> Tensor:
    """The experts ``src`` of ``table`` (indexed along ``dim``) plus Gaussian noise of
    ``noise`` times the std of the whole table, so that copies of one expert drift apart."""
    picked = table.index_select(dim, src)
    return picked + torch.randn_like(picked) * (noise * float(table.std()))

"""The parameters a regulariser acts on, and quadratic pulls toward an anchor.

Parameters are matched to anchors by name and shape: a name is stable across growth, a
deepcopy or a checkpoint, while ``id()`` is not. A parameter that appeared after the
anchor was taken (grown) or changed shape has no anchor and costs nothing.
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..layers.contract import managed_parameters


def shared_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """name -> parameter for every trainable parameter that growth does not own.

    Growth protects the layers that grow, their query networks and per-task heads
    (``managed_parameters``); everything else (stems, attention, norms, embeddings, layers
    that never grow, single heads) drifts toward the newest experience.
    """
    managed = {id(p) for p in managed_parameters(model)}
    return {
        name: p for name, p in model.named_parameters() if p.requires_grad and id(p) not in managed
    }


def grown_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """name -> parameter for every parameter growth owns that still trains (a new stage's
    experts and sub-keys, a query network that is not frozen): the complement of
    ``shared_parameters`` among the trainable ones."""
    managed = {id(p) for p in managed_parameters(model)}
    return {name: p for name, p in model.named_parameters() if p.requires_grad and id(p) in managed}


def named_prefixes(what: str, prefixes: Sequence[str]) -> tuple[str, ...]:
    """``prefixes`` as a tuple of non-empty strings (parameter-name prefixes, e.g. "tok.")."""
    if isinstance(prefixes, str) or not all(isinstance(p, str) and p for p in prefixes):
        raise ValueError(
            f"{what}={prefixes!r} must be a list of parameter-name prefixes, e.g. ['tok.']"
        )
    return tuple(prefixes)


def check_prefixes(model: nn.Module, prefixes: Sequence[str]) -> None:
    """Refuse a prefix that names no shared parameter: a typo would anchor nothing, silently."""
    shared = shared_parameters(model)
    for prefix in prefixes:
        if not any(name.startswith(prefix) for name in shared):
            raise ValueError(
                f"no shared parameter's name starts with {prefix!r}; the shared parameters: "
                f"{', '.join(shared) or 'none'}"
            )


def snapshot(model: nn.Module, prefixes: Sequence[str] = ()) -> dict[str, Tensor]:
    """Detached copies of the shared parameters (only those whose names start with one of
    ``prefixes``, when given), on their own devices."""
    check_prefixes(model, prefixes)
    keep = tuple(prefixes)
    return {
        name: p.detach().clone()
        for name, p in shared_parameters(model).items()
        if not keep or name.startswith(keep)
    }


def zero(model: nn.Module) -> Tensor:
    """A scalar 0 on the model's device and dtype (a penalty with nothing to pull)."""
    p = next(model.parameters(), None)
    return p.new_zeros(()) if p is not None else torch.zeros(())


def anchored(
    model: nn.Module, anchor: dict[str, Tensor], params: dict[str, nn.Parameter] | None = None
):
    """(name, parameter, anchor value) for each of ``params`` (default: the shared
    parameters) that ``anchor`` holds with the same shape."""
    for name, p in (shared_parameters(model) if params is None else params).items():
        a = anchor.get(name)
        if a is not None and a.shape == p.shape:
            yield name, p, a


def weighted_distance(
    model: nn.Module,
    anchor: dict[str, Tensor],
    weight: dict[str, Tensor] | None = None,
    params: dict[str, nn.Parameter] | None = None,
) -> Tensor:
    """Σ_i w_i (θ_i - θ*_i)² over the anchored ``params`` (default: the shared parameters);
    w_i = 1 without ``weight``."""
    total = zero(model)
    for name, p, a in anchored(model, anchor, params):
        sq = (p - a).pow(2)
        total = total + (sq if weight is None else weight[name] * sq).sum()
    return total

"""Regularisers by name, for configs: ``build_regularizer("ewc", decay=0.9)``."""

import inspect
from types import MappingProxyType

from .base import Regularizer
from .distill import DistillationRegularizer
from .ewc import EWCRegularizer
from .gen_distill import GenerativeDistillation
from .l2 import L2Regularizer
from .l2_sp import L2SPRegularizer
from .si import SIRegularizer

# Read-only: a new regulariser is passed to RegularizationPlugin directly, not registered.
REGULARIZERS = MappingProxyType(
    {
        "l2": L2Regularizer,
        "l2_sp": L2SPRegularizer,
        "ewc": EWCRegularizer,
        "si": SIRegularizer,
        "distill": DistillationRegularizer,
        "gen_distill": GenerativeDistillation,
    }
)


def build_regularizer(name: str, **options) -> Regularizer:
    """The regulariser registered as ``name``, built with its keyword ``options``:
    l2 (params), l2_sp (none), ewc (decay), si (xi), distill (temperature, labels), gen_distill
    (samples, batch, temperature, seed)."""
    if name not in REGULARIZERS:
        raise ValueError(
            f"regularizer {name!r} is not supported; choose one of {list(REGULARIZERS)}"
        )
    cls = REGULARIZERS[name]
    valid = [p for p in inspect.signature(cls).parameters]
    unknown = [o for o in options if o not in valid]
    if unknown:
        raise ValueError(
            f"regularizer {name!r} has no option {unknown[0]!r}; its options: {valid or 'none'}"
        )
    return cls(**options)

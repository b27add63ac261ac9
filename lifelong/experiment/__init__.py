"""From a run config to the objects of a run (docs/design.md, docs/extending.md).

Config objects stop here: layers and models receive flat keyword arguments.
"""

from .build import (
    Experiment,
    build_experiment,
    build_stream_from_config,
    resolve_device,
    seed_everything,
)
from .layers import build_growing, build_layer
from .models import build_model
from .sizing import fitted_options, reference_active_params
from .strategy import STRATEGIES, build_regularization, build_strategy

__all__ = [
    "STRATEGIES",
    "Experiment",
    "build_experiment",
    "build_growing",
    "build_layer",
    "build_model",
    "build_regularization",
    "build_strategy",
    "build_stream_from_config",
    "fitted_options",
    "reference_active_params",
    "resolve_device",
    "seed_everything",
]

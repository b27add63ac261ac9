"""The expert non-linearities σ, by name: one table for every layer.

``backward(grad, pre)`` is the gradient through σ given its input; PEER's fused expert mix
(``expert_mix``) calls it directly, with the same kernels autograd would use, so the fast
layer and the literal reference agree to the last bit of the activation.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import one_of


@dataclass(frozen=True)
class Activation:
    forward: Callable[[Tensor], Tensor]
    backward: Callable[[Tensor, Tensor], Tensor]  # (grad wrt σ(pre), pre) -> grad wrt pre


ACTIVATIONS = {
    "relu": Activation(F.relu, lambda grad, pre: torch.ops.aten.threshold_backward(grad, pre, 0)),
    "gelu": Activation(F.gelu, lambda grad, pre: torch.ops.aten.gelu_backward(grad, pre)),
}


def get_activation(name: str) -> Activation:
    """The activation called ``name``, or a ValueError naming the valid ones."""
    return ACTIVATIONS[one_of("activation", name, ACTIVATIONS)]

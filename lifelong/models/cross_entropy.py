"""``CrossEntropy``: the task loss of every model, with optional label smoothing."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import unit_interval


class CrossEntropy(nn.Module):
    """Mean cross-entropy over every prediction: logits (..., C), targets (...) class ids.

    Args:
    label_smoothing: ε, 0 <= ε < 1. The target puts 1 - ε on the true class and ε / C on
        every class (Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016, §7),
        which bounds how sure a model grows of its training data. It is a training
        regulariser: it applies only where a gradient is taken. Under ``torch.no_grad``,
        as Avalanche evaluates, the loss is the plain cross-entropy, so evaluation losses
        and perplexities measure the model, not the regulariser.
    """

    def __init__(self, *, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = unit_interval("label_smoothing", label_smoothing)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        assert logits.shape[:-1] == targets.shape, (logits.shape, targets.shape)
        smoothing = self.label_smoothing if torch.is_grad_enabled() else 0.0
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), label_smoothing=smoothing
        )

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"

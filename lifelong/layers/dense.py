"""The dense FFN baseline, with the expert-layer call signature ``forward(x, stage=None)``."""

import torch.nn.functional as F
from torch import Tensor, nn


class DenseFFN(nn.Module):
    """``W2 σ(W1 x)``: (..., dim) -> (..., dim). ``stage`` is accepted and ignored, so a
    dense FFN plugs in wherever an expert layer does. With ``hidden = heads·topk`` it has
    the active parameters per token of a PEER layer (2·dim per retrieved expert)."""

    def __init__(self, dim: int, *, hidden: int, activation: str = "gelu"):
        super().__init__()
        if activation not in ("gelu", "relu"):
            raise ValueError(f"activation={activation!r} is not supported; choose 'gelu' or 'relu'")
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)
        self.activation = F.gelu if activation == "gelu" else F.relu

    def forward(self, x: Tensor, stage=None) -> Tensor:
        return self.fc2(self.activation(self.fc1(x)))

"""BatchNorm over the whole batch when each rank holds a slice of it.

PEER's query network normalises with BatchNorm (``model.peer.query_batchnorm``). A rank
that normalised its slice by the slice's own statistics would compute other outputs,
gradients and running statistics than one process does on the whole batch, and the
ranks' running statistics would drift apart. ``torch.nn.SyncBatchNorm`` computes the
whole batch's statistics, but only on accelerators (it refuses CPU tensors), so on the CPU
``GlobalBatchNorm`` does the same with a differentiable all-reduce (``sum_over_ranks``):
the gradients reach every rank's slice through the shared statistics.
"""

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced gradient: every rank's output
    is the same sum, so each rank's input reaches every rank's loss."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def sum_over_ranks(x: Tensor) -> Tensor:
    return _SumOverRanks.apply(x)


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of the batch summed over every rank
    (mean, then variance around it: two all-reduces); in evaluation, or in one process, it
    is ``torch.nn.BatchNorm``. Inputs (N, C, ...), as ``SyncBatchNorm``."""

    def _check_input_dim(self, x: Tensor):
        if x.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions, got {x.dim()}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        dims = [0, *range(2, x.dim())]
        h = x.float()  # statistics in float32, also under bf16 autocast
        rows = torch.tensor([h.numel() // h.shape[1]], dtype=h.dtype, device=h.device)
        total = sum_over_ranks(torch.cat([h.sum(dims), rows]))
        n = float(total[-1].detach())
        mean = total[:-1] / n
        var = sum_over_ranks(((h - mean.view(shape)) ** 2).sum(dims)) / n  # biased
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach(), n)
        y = (h - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, n: float):
        """As ``F.batch_norm``: an exponential average (or, momentum None, the cumulative
        one) of the mean and the unbiased variance."""
        self.num_batches_tracked.add_(1)
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (n / (n - 1)) if n > 1 else var
        self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)


def global_batchnorm(model: nn.Module, device_type: str) -> nn.Module:
    """Replace, in place, every BatchNorm of ``model`` by one normalising over the whole
    batch of all ranks: ``SyncBatchNorm`` on CUDA, ``GlobalBatchNorm`` elsewhere. The new
    modules hold the very same parameter and buffer tensors, so an optimizer already built
    over ``model`` keeps training them and the state dict keeps its names."""
    kind = nn.SyncBatchNorm if device_type == "cuda" else GlobalBatchNorm
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _BatchNorm) and not isinstance(child, kind):
                setattr(parent, name, _same_tensors(child, kind))
    return model


def _same_tensors(bn: _BatchNorm, kind: type[_BatchNorm]) -> _BatchNorm:
    new = kind(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    for name in ("weight", "bias"):  # Parameters (or None): the optimizer's objects
        setattr(new, name, getattr(bn, name))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        setattr(new, name, getattr(bn, name))
    return new.train(bn.training)

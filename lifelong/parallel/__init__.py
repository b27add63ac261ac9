"""Data-parallel training under torchrun (docs/running.md, "Data-parallel runs").

Every rank draws the batches one process would draw, trains on its slice of each, and the
ranks' gradients are summed into the gradient of the whole batch, so N ranks compute what
one process computes:

- ``DataParallelPlugin``: the Avalanche plugin that slices the batches, weighs each rank's
  loss by its share, sums the gradients and the growth statistics over the ranks;
- ``global_batchnorm``: BatchNorm statistics of the whole batch (``torch.nn.SyncBatchNorm``
  on CUDA, ``GlobalBatchNorm`` on the CPU, where SyncBatchNorm does not run);
- ``sync_gradients``: dense and row-sparse gradients summed over the ranks;
- ``whole_batches``: an Avalanche data loader that draws whole batches on every rank.

The process group itself comes from torchrun and ``lifelong.training.distributed``.
"""

from .batchnorm import GlobalBatchNorm, global_batchnorm
from .gradients import sync_gradients
from .loaders import whole_batches
from .plugin import DataParallelPlugin, row_slice

__all__ = [
    "DataParallelPlugin",
    "GlobalBatchNorm",
    "global_batchnorm",
    "row_slice",
    "sync_gradients",
    "whole_batches",
]

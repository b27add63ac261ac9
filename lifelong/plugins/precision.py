"""bf16 autocast for the forward passes of training and evaluation (``train.precision``).

Weights, gradients and optimizer state stay float32: ``torch.autocast`` runs each matmul
in bf16 and keeps precision-sensitive ops in float32 (mixed precision, Micikevicius et
al. 2018, with bf16's float32 exponent range, so no loss scaling). The model's output is
cast back to float32 before the loss, which is computed outside autocast. The growing
layers' sparse expert functions compute in their tables' dtype (float32).
"""

import torch
from avalanche.core import SupervisedPlugin

PRECISIONS = ("fp32", "bf16")


class PrecisionPlugin(SupervisedPlugin, supports_distributed=True):
    """Enter ``torch.autocast(device_type, bfloat16)`` around every forward pass (on each
    rank alike in a data-parallel run)."""

    def __init__(self, device_type: str):
        super().__init__()
        self.device_type = device_type
        self._context = None

    def _enter(self):
        self._context = torch.autocast(self.device_type, dtype=torch.bfloat16)
        self._context.__enter__()

    def _exit(self, strategy):
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None
        if isinstance(strategy.mb_output, torch.Tensor):
            strategy.mb_output = strategy.mb_output.float()  # the loss in float32

    def before_forward(self, strategy, *args, **kwargs):
        self._enter()

    def after_forward(self, strategy, *args, **kwargs):
        self._exit(strategy)

    def before_eval_forward(self, strategy, *args, **kwargs):
        self._enter()

    def after_eval_forward(self, strategy, *args, **kwargs):
        self._exit(strategy)

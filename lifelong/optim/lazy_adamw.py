"""AdamW that also takes row-sparse gradients, updating only the rows they touch.

PEER expert tables get sparse gradients holding just the rows a batch retrieved
(``PEER(sparse_grad=True)``). ``torch.optim.Adam``/``AdamW`` refuse sparse gradients, and a
dense gradient would make every step cost O(N). This optimizer applies the usual AdamW
update to dense gradients and a *lazy* AdamW update to sparse ones: the moments, weight
decay and parameter of a row change only on steps that touch that row (the semantics of
``torch.optim.SparseAdam`` and TF's LazyAdam), with bias correction from the parameter's
step count.

The moments of sparse-gradient parameters (the expert tables, which dominate the memory)
can be kept smaller, ``moments=``:
- ``"fp32"`` (default): two float32 moments per weight, 2x the table's bytes;
- ``"bf16"``: both moments stored in bfloat16 and updated in float32, 1x the table's bytes;
- ``"rowwise"``: a float32 first moment per weight and one second moment per row, the mean
  of the row's squared gradient (Adafactor's factored second moment, Shazeer & Stern
  2018, reduced to rows as in row-wise AdaGrad for embedding tables), ~1x the table's bytes;
- ``"bf16_rowwise"``: both savings, a bfloat16 first moment and one float32 second moment
  per row, ~0.5x the table's bytes.

It is one ``torch.optim.Optimizer``, so a framework that builds it from
``model.parameters()`` and later appends grown parameters to ``param_groups`` (Avalanche's
``update_optimizer``) works unchanged. Parameters with ``requires_grad=False`` (frozen
experts) are skipped and their state is released on the next step.
"""

import math

import torch
from torch import Tensor

# Rows per block of the sparse update: gathered moments stay in cache between the
# index_select and the index_copy.
_ROW_BLOCK = 4096


def _row_sparse(grad: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct ascending rows and their summed gradient values."""
    rows = grad._indices()[0]
    # Autograd drops the coalesced flag of a single sparse gradient; a sort is only needed
    # when rows repeat or are out of order (gradients accumulated over several backwards).
    if not grad.is_coalesced() and not bool((rows[1:] > rows[:-1]).all()):
        grad = grad.coalesce()
        rows = grad._indices()[0]
    return rows, grad._values()


MOMENTS = ("fp32", "bf16", "rowwise", "bf16_rowwise")


class LazyAdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` plus lazy row-wise updates for sparse gradients.

    Same arguments as ``torch.optim.AdamW`` except ``weight_decay`` defaults to 0 (the PKM
    recommendation for memory values), plus ``moments`` (module doc) for the parameters
    with sparse gradients; ``amsgrad`` is not available for sparse gradients.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        *,
        moments: str = "fp32",
        **kwargs,
    ):
        if moments not in MOMENTS:
            raise ValueError(f"moments={moments!r} is not supported; choose one of {MOMENTS}")
        self.moments = moments
        self._bf16 = moments in ("bf16", "bf16_rowwise")  # moments stored in bfloat16
        self._rowwise = moments in ("rowwise", "bf16_rowwise")  # one second moment per row
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Release the state of frozen parameters. The state holds only parameters that
        # trained (or were just added), so this loop does not grow with the frozen stages
        # that stay in param_groups (Avalanche keeps every parameter there).
        for p in [p for p in self.state if not p.requires_grad]:
            del self.state[p]
        hidden = []
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is not None and grad.is_sparse and p.requires_grad:
                    self._sparse_step(p, group)
                    hidden.append((p, grad))
                    p.grad = None  # AdamW's dense step skips parameters without a gradient
        try:
            super().step()
        finally:
            for p, grad in hidden:
                p.grad = grad
        return loss

    def _sparse_step(self, p: Tensor, group: dict):
        if group["amsgrad"]:
            raise ValueError("LazyAdamW: amsgrad=True is not supported for sparse gradients")
        rows, values = _row_sparse(p.grad)
        if group["maximize"]:
            values = -values
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0)
            store = torch.bfloat16 if self._bf16 else p.dtype
            state["exp_avg"] = torch.zeros_like(p, dtype=store)
            if self._rowwise:  # one float32 second moment per row: (rows, 1, ...)
                state["exp_avg_sq"] = p.new_zeros(p.shape[0], *([1] * (p.dim() - 1)))
            else:
                state["exp_avg_sq"] = torch.zeros_like(p, dtype=store)
        state["step"] += 1
        step = float(state["step"])
        beta1, beta2 = group["betas"]
        lr, eps, decay = float(group["lr"]), group["eps"], group["weight_decay"]
        step_size = lr / (1 - beta1**step)
        bias_sqrt = math.sqrt(1 - beta2**step)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        for start in range(0, rows.numel(), _ROW_BLOCK):
            r = rows[start : start + _ROW_BLOCK]
            g = values[start : start + _ROW_BLOCK]
            # Moments stored in bf16 are updated in the parameter's dtype.
            m = exp_avg.index_select(0, r).to(p.dtype).lerp_(g, 1 - beta1)
            v = exp_avg_sq.index_select(0, r).to(p.dtype).mul_(beta2)
            if self._rowwise:  # the row's mean squared gradient
                v.add_(g.pow(2).reshape(g.shape[0], -1).mean(1).view_as(v), alpha=1 - beta2)
            else:
                v.addcmul_(g, g, value=1 - beta2)
            w = p.index_select(0, r)
            if decay:
                w.mul_(1 - lr * decay)  # decoupled weight decay (Loshchilov & Hutter 2019)
            w.addcdiv_(m, v.sqrt().div_(bias_sqrt).add_(eps), value=-step_size)
            exp_avg.index_copy_(0, r, m.to(exp_avg.dtype))
            exp_avg_sq.index_copy_(0, r, v.to(exp_avg_sq.dtype))
            p.index_copy_(0, r, w)

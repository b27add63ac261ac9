"""The Avalanche plugin that turns N ranks into one process on the whole batch.

Per training iteration, every rank holds the whole batch a single process would draw
(``whole_batches``) and keeps its slice of it (``row_slice``); its loss, mean over its
rows plus every penalty, is weighted by its share of the rows, so the ranks' losses sum to
the whole batch's loss and their summed gradients (``sync_gradients``, after backward) to
its gradient, on the last, smaller batch of an epoch too. The growing layers' router mass
(which ranks the experts ``growth.init=upcycle`` copies) is summed over the ranks at the
end of each training experience, so every rank grows the same experts. Evaluation runs
whole on every rank, so every rank records the same metrics.
"""

import torch
import torch.distributed as dist
from avalanche.core import SupervisedPlugin

from ..layers.sharded_peer import sharded_parameters
from ..plugins.finite_loss import non_finite_loss
from .gradients import sync_gradients
from .loaders import whole_batches

MASS = "router_mass"  # the growing layers' buffer of gates summed over training forwards


class DataParallelError(ValueError):
    """A batch that data parallelism cannot split, phrased for the command line."""


def row_slice(rows: int, rank: int, world: int) -> tuple[int, int]:
    """[lo, hi) of ``rank``'s rows among ``rows``: contiguous, sizes differing by at most
    one (the first ``rows % world`` ranks hold one more)."""
    base, extra = divmod(rows, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class DataParallelPlugin(SupervisedPlugin, supports_distributed=True):
    """Data parallelism for any Avalanche strategy over an initialised process group.

    Register it after the plugins that add to the loss and before ``FiniteLossPlugin``: it
    weighs the whole loss by this rank's share, then checks the whole batch's loss itself,
    so a NaN in one rank's slice stops every rank at the same iteration.
    """

    def __init__(self):
        super().__init__()
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self._share = 1.0  # this rank's rows / the batch's rows
        self._mass_before: dict[str, torch.Tensor] = {}

    def before_training_exp(self, strategy, *args, **kwargs):
        # After ReplayPlugin (registered first), which builds the replay loader here.
        strategy.dataloader = whole_batches(strategy.dataloader)
        # Growth (the adaptation) has run: the mass this experience starts from.
        self._mass_before = {n: b.clone() for n, b in _masses(strategy.model)}

    def before_eval_exp(self, strategy, *args, **kwargs):
        strategy.dataloader = whole_batches(strategy.dataloader)

    def before_training_iteration(self, strategy, *args, **kwargs):
        rows = len(strategy.mbatch[0])
        if rows < self.world:  # the same batch on every rank: every rank stops here
            raise DataParallelError(
                f"a training batch of {rows} rows cannot be split over {self.world} ranks "
                f"(experience {strategy.experience.current_experience}); change "
                "train.batch_size or the number of ranks"
            )
        lo, hi = row_slice(rows, self.rank, self.world)
        strategy.mbatch = [part[lo:hi] for part in strategy.mbatch]
        self._share = (hi - lo) / rows

    def before_backward(self, strategy, *args, **kwargs):
        strategy.loss = strategy.loss * self._share
        # The whole batch's loss, as one process would check it: a NaN on one rank's
        # slice stops every rank at the same iteration instead of leaving the others
        # waiting for its gradients.
        whole = strategy.loss.detach().reshape(-1).sum().clone()
        dist.all_reduce(whole)
        error = non_finite_loss(whole, strategy)
        if error is not None:
            raise error

    def after_backward(self, strategy, *args, **kwargs):
        # A sharded expert table's rows differ between ranks and already hold the gradient
        # of every rank's tokens (ShardedPEER sends it to the rows' owners).
        own = {id(p) for p in sharded_parameters(strategy.model).values()}
        sync_gradients([p for p in strategy.model.parameters() if id(p) not in own])

    def after_training_exp(self, strategy, *args, **kwargs):
        for name, mass in _masses(strategy.model):
            before = self._mass_before.get(name)
            if before is None or before.shape != mass.shape:
                before = torch.zeros_like(mass)
            added = mass - before  # this rank's slices' gates
            dist.all_reduce(added)
            mass.copy_(before + added)


def _masses(model) -> list[tuple[str, torch.Tensor]]:
    return [(n, b) for n, b in model.named_buffers() if n.rsplit(".", 1)[-1] == MASS]

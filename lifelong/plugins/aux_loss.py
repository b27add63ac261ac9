"""Add the expert layers' auxiliary losses to the training loss (an Avalanche plugin)."""

from avalanche.core import SupervisedPlugin


class AuxLossPlugin(SupervisedPlugin, supports_distributed=True):
    """Before each backward pass, add every module's ``aux_loss`` from the forward pass just
    run (e.g. the Switch load-balancing loss of a token-choice MoE). The layers keep only
    their latest loss, set on each forward; nothing is accumulated across iterations.
    Data parallel, each rank adds the loss of its slice (weighted by the slice's share):
    runs refuse the batch-wide MoE layers whose loss that would change."""

    def before_backward(self, strategy, *args, **kwargs):
        for module in strategy.model.modules():
            aux = getattr(module, "aux_loss", None)
            if aux is not None and aux.requires_grad:
                strategy.loss = strategy.loss + aux

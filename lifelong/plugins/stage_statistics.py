"""Fill the stage selectors after each training experience (an Avalanche plugin).

A selector (``lifelong.models.selectors``) keeps sufficient statistics of the features
each experience produced at its layer's input, never the samples. They are taken in one
pass over the experience's training data once it is trained, in evaluation mode (no
BatchNorm statistics move), with every sample routed to the experience's own stage as in
training: the features are those of the model that will be evaluated, and they stay
valid as long as what computes them is frozen (the stem or query network, by
``model.freeze_after_first`` and ``growth.freeze_query``).
"""

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_forward

from ..data.in_order import in_order
from ..models import GrowingExperts, routed_as_trained


class StageStatisticsPlugin(SupervisedPlugin, supports_distributed=True):
    """After each training experience, feed every ``GrowingExperts`` with a selector the
    inputs its layer sees on that experience's training data. Data parallel, every rank
    passes over the whole experience (a plain DataLoader, in evaluation mode), so every
    rank's selectors hold the same statistics."""

    def after_training_exp(self, strategy, *args, **kwargs):
        model = strategy.model
        inferring = [
            m for m in model.modules() if isinstance(m, GrowingExperts) and m.selector is not None
        ]
        if not inferring:
            return
        experience = int(strategy.experience.current_experience)
        dataset = strategy.experience.dataset.eval()
        loader = in_order(dataset, strategy.eval_mb_size or strategy.train_mb_size)
        was_training = model.training
        batch_labels = {}  # the labels of the batch going through the model

        def observe(module, inputs):
            # Components per class, or for a language model per input byte: its features
            # are clusters around each byte, shaped by the byte's context in the domain.
            labels = batch_labels["x" if module.causal else "y"]
            module.selector.update(experience, inputs[0], labels)

        # One layer per selector feeds it: layers sharing a selector of the input bytes
        # would otherwise count every byte once per layer.
        feeding = {id(m.selector): m for m in reversed(inferring)}.values()
        handles = [m.register_forward_pre_hook(observe) for m in feeding]
        model.eval()
        try:
            with torch.no_grad(), routed_as_trained(model, experience):
                for batch in loader:
                    x, t = batch[0].to(strategy.device), batch[-1].to(strategy.device)
                    batch_labels.update(x=batch[0], y=batch[1])
                    avalanche_forward(model, x, t)
        finally:
            for handle in handles:
                handle.remove()
            model.train(was_training)

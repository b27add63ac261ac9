"""Everything a run needs to continue after its last finished experience, and how to put it
back into a freshly built run (same config) so training proceeds bit for bit as if it had
never stopped.

Saved after experience e (``finished = e + 1``): the model with every grown stage, the
optimizer state by parameter name, the strategy's clock, every plugin's state (replay
memory, regulariser anchors and importances, distillation copy, ...), the metrics so far
and the random generators. The model's *architecture* is not saved: a fresh model is grown
by replaying Avalanche's model adaptation over the finished experiences (growth depends
only on the stream), then the weights are loaded into it.
"""

from collections import defaultdict

import torch
from avalanche.models.utils import avalanche_model_adaptation
from torch import nn

from .checkpoint import rng_state, set_rng_state
from .identity import load_weights
from .plugin_state import load_plugin_states, plugin_states


def grow_like_checkpoint(model: nn.Module, finished: int, *, train_stream, test_stream):
    """Replay the adaptation of the run so far: training adaptation (growth, new heads) of
    the first ``finished`` experiences, then evaluation adaptation of the test stream
    (per-task heads are also added when a task is first evaluated)."""
    model.train()
    for experience in list(train_stream)[:finished]:
        avalanche_model_adaptation(model, experience)
    model.eval()
    for experience in test_stream:
        avalanche_model_adaptation(model, experience)
    return model


def optimizer_state(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict:
    """The optimizer's state and groups keyed by parameter name: grown parameters are
    appended to the optimizer over time, so positions differ between runs, names do not."""
    names = {id(p): n for n, p in model.named_parameters()}
    group_of = {}
    for g, group in enumerate(optimizer.param_groups):
        group_of.update({names[id(p)]: g for p in group["params"] if id(p) in names})
    return {
        "state": {names[id(p)]: s for p, s in optimizer.state.items() if id(p) in names and s},
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups],
        "group_of": group_of,
    }


def load_optimizer_state(optimizer, model: nn.Module, saved: dict) -> dict:
    """Restore ``optimizer_state``; returns name -> parameter of what the optimizer holds
    (Avalanche's ``strategy.optimized_param_id``)."""
    named = dict(model.named_parameters())
    missing = sorted(set(saved["group_of"]) - set(named))
    if missing:
        raise ValueError(f"checkpoint optimizer has parameters the model lacks: {missing[:3]}")
    if len(saved["groups"]) != len(optimizer.param_groups):
        raise ValueError("checkpoint optimizer has a different number of parameter groups")
    for g, (group, hyper) in enumerate(zip(optimizer.param_groups, saved["groups"], strict=True)):
        group.update(hyper)
        group["params"] = [p for n, p in named.items() if saved["group_of"].get(n) == g]
    optimizer.state = defaultdict(dict)
    for name, state in saved["state"].items():
        p = named[name]
        # Adam keeps "step" on the CPU unless capturable/fused; moments live with the param.
        optimizer.state[p] = {
            k: v.to(p.device) if torch.is_tensor(v) and k != "step" else v for k, v in state.items()
        }
    return {n: named[n] for n in saved["group_of"]}


CLOCK_COUNTERS = tuple(
    "train_iterations train_exp_counter train_exp_epochs train_exp_iterations "
    "train_epoch_iterations total_iterations".split()
)


def capture(*, finished: int, strategy, metrics: dict, wall_s: float) -> dict:
    """The state to save after ``finished`` experiences; ``metrics``: name -> metric."""
    return {
        "finished": finished,
        "model": strategy.model.state_dict(),
        "optimizer": optimizer_state(strategy.optimizer, strategy.model),
        "clock": {k: getattr(strategy.clock, k) for k in CLOCK_COUNTERS},
        "plugins": plugin_states(strategy.plugins),
        "metrics": {name: m.state_dict() for name, m in metrics.items()},
        "rng": rng_state(),
        "wall_s": wall_s,
    }


def restore(
    state: dict, *, strategy, metrics: dict, train_stream, test_stream, path="checkpoint"
) -> None:
    """Put ``capture``'s state back into a run built from the same config (``path``: the
    file it came from, for messages)."""
    finished = int(state["finished"])
    model = grow_like_checkpoint(
        strategy.model, finished, train_stream=train_stream, test_stream=test_stream
    )
    load_weights(model, state["model"], path)
    model.to(strategy.device)  # before the optimizer state, which must sit with the params
    strategy.optimized_param_id = load_optimizer_state(
        strategy.optimizer, model, state["optimizer"]
    )
    for k, v in state["clock"].items():
        setattr(strategy.clock, k, v)
    experiences = list(train_stream)[:finished]
    load_plugin_states(
        strategy.plugins,
        state["plugins"],
        model=model,
        datasets={int(e.current_experience): e.dataset for e in experiences},
    )
    for name, metric in metrics.items():
        if name in state["metrics"]:  # a metric added since the checkpoint starts empty
            metric.load_state_dict(state["metrics"][name])
    set_rng_state(state["rng"])  # last: everything above may have drawn random numbers

"""An outside framework (Avalanche) builds the optimizer and adds grown parameters later."""

import torch
from avalanche.models.dynamic_optimizers import update_optimizer
from torch import nn

from lifelong.layers import PEER
from lifelong.optim import LazyAdamW


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.peer = PEER(8, num_experts=16, heads=2, topk=3)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.peer(self.inp(x)))


def step(model, opt):
    loss = nn.functional.cross_entropy(model(torch.randn(32, 6)), torch.randint(0, 3, (32,)))
    loss.backward()
    opt.step()
    opt.zero_grad()


def test_update_optimizer_adds_grown_parameters_and_old_experts_stay_frozen():
    model = Net()
    opt = LazyAdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    # Avalanche's make_optimizer: the first call registers the current parameters.
    optimized = update_optimizer(opt, dict(model.named_parameters()), None)
    step(model, opt)

    model.peer.grow(2)
    optimized = update_optimizer(opt, dict(model.named_parameters()), optimized)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    for name in ("peer.up.1", "peer.down.1", "peer.sub_keys1.1", "peer.sub_keys2.1"):
        assert id(dict(model.named_parameters())[name]) in in_opt, name

    old = [
        p.detach().clone() for p in (model.peer.up[0], model.peer.down[0], model.peer.sub_keys1[0])
    ]
    new_up = model.peer.up[1].detach().clone()
    for _ in range(3):
        step(model, opt)
    now = (model.peer.up[0], model.peer.down[0], model.peer.sub_keys1[0])
    assert all(torch.equal(a, b) for a, b in zip(old, now, strict=True))
    assert not torch.equal(new_up, model.peer.up[1])
    assert model.peer.up[0] not in opt.state and model.peer.up[1] in opt.state

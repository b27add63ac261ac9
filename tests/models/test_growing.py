"""Growth inside Avalanche strategies: new parameters reach the optimizer, old experts stay."""

import pytest
import torch
from avalanche.training import EWC, LwF, Naive, Replay, SynapticIntelligence
from tiny_streams import naive, tiny_benchmark

from lifelong.layers import PEER
from lifelong.models.growing import GrowingExperts
from lifelong.models.mlp import MLPClassifier
from lifelong.optim import LazyAdamW


def peer_model(policy="every_experience", routing="task_aware", freeze_query=True):
    ffn = GrowingExperts(
        PEER(16, num_experts=16, heads=2, topk=2),
        policy=policy,
        grow_size=2,
        routing=routing,
        freeze_query=freeze_query,
    )
    return MLPClassifier(in_features=10, num_classes=8, dim=16, ffn=ffn, head="multi")


STRATEGIES = {
    "naive": lambda **kw: Naive(**kw),
    "ewc": lambda **kw: EWC(ewc_lambda=1.0, **kw),
    "si": lambda **kw: SynapticIntelligence(si_lambda=0.1, **kw),
    "lwf": lambda **kw: LwF(alpha=1.0, temperature=2.0, **kw),
    "replay": lambda **kw: Replay(mem_size=20, **kw),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_growth_under_every_strategy_keeps_old_experts_and_optimizes_new_ones(name):
    model = peer_model()
    layer = model.ffn.layer
    opt = LazyAdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    strategy = STRATEGIES[name](
        model=model,
        optimizer=opt,
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=16,
        train_epochs=2,
        eval_mb_size=32,
        evaluator=None,
    )
    bm = tiny_benchmark()
    snapshots = []
    for e, exp in enumerate(bm.train_stream):
        strategy.train(exp)
        strategy.eval(bm.test_stream)  # evaluation adapts the model too: it must not grow
        assert layer.num_stages == e + 1
        in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
        assert id(layer.up[e]) in in_opt and id(layer.sub_keys1[e]) in in_opt
        # Every earlier stage is exactly as it was when its experience ended.
        for stage, (up, down) in enumerate(snapshots):
            assert torch.equal(layer.up[stage], up) and torch.equal(layer.down[stage], down)
        snapshots.append((layer.up[e].detach().clone(), layer.down[e].detach().clone()))
    assert not layer.query[0].weight.requires_grad


def test_frozen_query_keeps_batchnorm_statistics():
    model = peer_model()
    bn = model.ffn.layer.query[1]
    strategy = naive(model)
    bm = tiny_benchmark()
    strategy.train(bm.train_stream[0])
    stats = bn.running_mean.clone(), bn.running_var.clone()
    strategy.train(bm.train_stream[1])
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert not bn.training


def test_task_aware_routing_uses_the_stage_of_each_task():
    model = peer_model()
    strategy = naive(model)
    for exp in tiny_benchmark(task_labels=(0, 1, 2)).train_stream:
        strategy.train(exp)
    stages = model.ffn.stages_for(torch.tensor([2, 0, 1, 7]))
    assert stages.tolist() == [2, 0, 1, 2]  # an unseen task label uses every expert
    assert peer_model(routing="task_agnostic").ffn.stages_for(torch.tensor([0])) is None


def test_new_task_label_policy_grows_only_for_new_labels():
    model = peer_model(policy="new_task_label")
    strategy = naive(model)
    stages = []
    for exp in tiny_benchmark(task_labels=(0, 0, 1, 1)).train_stream:
        strategy.train(exp)
        stages.append(model.ffn.layer.num_stages)
    assert stages == [1, 1, 2, 2]


def test_never_policy_and_bad_arguments():
    model = peer_model(policy="never")
    strategy = naive(model)
    for exp in tiny_benchmark().train_stream:
        strategy.train(exp)
    assert model.ffn.layer.num_stages == 1
    with pytest.raises(ValueError, match="policy='sometimes'"):
        GrowingExperts(PEER(8, num_experts=16, topk=2), policy="sometimes")
    with pytest.raises(ValueError, match="routing='oracle'"):
        GrowingExperts(PEER(8, num_experts=16, topk=2), routing="oracle")

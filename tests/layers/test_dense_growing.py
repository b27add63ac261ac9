"""DenseFFN growth inside Avalanche and the run config: GrowingExperts grows it per
experience, the optimizer gets the new units, FreezeSharedPlugin leaves them to growth."""

import torch
from tiny_streams import naive, tiny_benchmark

from lifelong.config import load_config
from lifelong.experiment import build_growing
from lifelong.experiment.models import build_transformer
from lifelong.layers import managed_parameters
from lifelong.layers.dense import MLP, DenseFFN
from lifelong.models.growing import GrowingExperts
from lifelong.models.mlp import MLPClassifier
from lifelong.plugins import FreezeSharedPlugin


def dense_model(policy="every_experience"):
    ffn = GrowingExperts(DenseFFN(16, hidden=8), policy=policy, grow_size=4)
    return MLPClassifier(in_features=10, num_classes=8, dim=16, ffn=ffn, head="multi")


def managed_ids(model) -> set[int]:
    return {id(p) for p in managed_parameters(model)}


def strategy_for(model, plugins=()):
    strategy = naive(model, epochs=2, plugins=plugins, weight_decay=0.01, eval_mb_size=32)
    return strategy, strategy.optimizer


def stage_weights(layer, s):
    """W1 rows (m_s, d) and W2 columns (d, m_s) that stage s added."""
    if s == 0:
        return layer.fc1.weight, layer.fc2.weight
    return layer.fc1_grown[s - 1], layer.fc2_grown[s - 1]


def test_growing_experts_grows_a_dense_layer_and_keeps_old_units():
    model = dense_model()
    layer = model.ffn.layer
    strategy, opt = strategy_for(model, [FreezeSharedPlugin(["shared"])])
    bm = tiny_benchmark(task_labels=(0, 1, 2))
    snapshots = []
    for e, exp in enumerate(bm.train_stream):
        strategy.train(exp)
        strategy.eval(bm.test_stream)  # evaluation adapts the model too: it must not grow
        assert layer.num_stages == e + 1 and layer.stage_bounds[-1] == 8 + 4 * e
        newest = stage_weights(layer, e)
        in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
        assert all(id(p) in in_opt and p.requires_grad for p in newest)  # not frozen as shared
        for s, (w1, w2) in enumerate(snapshots):  # every older stage as its experience left it
            old = stage_weights(layer, s)
            assert not old[0].requires_grad and torch.equal(old[0], w1)
            assert torch.equal(old[1], w2)
        snapshots.append(tuple(p.detach().clone() for p in newest))
        assert float(layer.router_mass[layer.stage_bounds[-1] - 1]) > 0  # the newest unit ran
    assert model.ffn.stages_for(torch.tensor([2, 0, 1])).tolist() == [2, 0, 1]
    assert not model.stem[1].weight.requires_grad  # the shared stem was frozen


def test_never_policy_keeps_the_dense_layer_shared_and_ungrown():
    model = dense_model(policy="never")
    layer = model.ffn.layer
    strategy, _ = strategy_for(model, [FreezeSharedPlugin(["shared"])])
    assert id(layer.fc1.weight) not in managed_ids(model)
    for exp in tiny_benchmark(task_labels=(0, 1)).train_stream:
        strategy.train(exp)
    assert layer.num_stages == 1
    assert not layer.fc1.weight.requires_grad  # frozen as a shared parameter, as before
    growing = dense_model()  # a policy that may grow it: growth manages its units
    assert id(growing.ffn.layer.fc1.weight) in managed_ids(growing)


def test_run_config_grows_dense_by_grow_size_and_keeps_ordinary_blocks_plain():
    cfg = load_config(None, ["model.ffn=dense", "model.dense.hidden=12"])
    ffn = build_growing(cfg)
    assert isinstance(ffn.layer, DenseFFN) and ffn.grow_size is None
    ffn.layer.grow(ffn.grow_size)  # None: as many units as its first stage
    assert ffn.layer.stage_bounds == [12, 24]
    cfg = load_config(None, ["model.ffn=dense", "model.dense.hidden=12", "model.dense.grow_size=5"])
    assert build_growing(cfg).grow_size == 5
    blocks = build_transformer(cfg, seq_len=8).blocks
    experts = [b.ffn for b in blocks if isinstance(b.ffn, GrowingExperts)]
    plain = [b.ffn for b in blocks if not isinstance(b.ffn, GrowingExperts)]
    assert len(experts) == 1 and len(plain) == len(blocks) - 1
    assert all(type(f) is MLP and not hasattr(f, "grow") for f in plain)

"""Which parameters the regularisers act on, and how grown ones are matched."""

import torch
from tiny_regularized import lm_model, peer_model
from tiny_streams import naive, one_thread, tiny_benchmark
from torch import nn

from lifelong.regularizers import shared_parameters, snapshot, weighted_distance

# Growth-managed parameters, spelled out by name (independent of managed_parameters()).
MANAGED_PREFIXES = ("ffn.layer.", "head.heads.", "blocks.0.ffn.layer.")


def grown(model, task_labels=(0, 1, 2)):
    """``model`` after Naive training over tiny experiences: PEER grown, heads added."""
    strategy = naive(model)
    for exp in tiny_benchmark(task_labels).train_stream:
        strategy.train(exp)
    return model


def test_multi_head_model_shares_only_its_stem():
    with one_thread():
        model = grown(peer_model())
    assert model.ffn.layer.num_stages == 3 and len(model.head.heads) == 3
    assert sorted(shared_parameters(model)) == ["stem.1.bias", "stem.1.weight"]


def test_single_head_is_shared_experts_and_query_are_not():
    model = peer_model(head="single")
    names = set(shared_parameters(model))
    assert names == {"stem.1.weight", "stem.1.bias", "head.weight", "head.bias"}
    assert not any(n.startswith(MANAGED_PREFIXES) for n in names)


def test_language_model_shares_everything_but_the_expert_layer():
    model = lm_model()
    names = set(shared_parameters(model))
    everything = {n for n, _ in model.named_parameters()}
    expert = {n for n in everything if n.startswith("blocks.0.ffn.layer.")}
    assert expert and names == everything - expert
    assert "tok.weight" in names and "blocks.0.attn.qkv.weight" in names


def test_frozen_parameters_are_not_shared():
    model = peer_model(head="single")
    model.stem.requires_grad_(False)
    assert set(shared_parameters(model)) == {"head.weight", "head.bias"}


def test_distance_ignores_parameters_without_a_matching_anchor():
    model = nn.Sequential(nn.Linear(2, 2))
    anchor = snapshot(model)
    model.register_parameter("grown", nn.Parameter(torch.ones(3)))  # appeared after the anchor
    assert weighted_distance(model, anchor).item() == 0.0
    with torch.no_grad():
        model[0].weight += 1.0
    assert weighted_distance(model, anchor).item() == 4.0
    model[0].weight = nn.Parameter(torch.zeros(3, 2))  # changed shape: no anchor any more
    assert weighted_distance(model, anchor).item() == 0.0

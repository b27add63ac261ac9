"""Stage Parameters are views of one table; every way of breaking that is healed."""

import copy

import torch

from lifelong.layers import PEER


def grown_layer():
    layer = PEER(8, num_experts=16, heads=2, topk=3)
    layer.grow(2)
    return layer.eval()


def test_parameters_alias_one_table():
    layer = grown_layer()
    assert layer._aliased(layer.up, layer._up) and layer._aliased(layer.down, layer._down)
    with torch.no_grad():
        layer.up[1][0] += 1.0  # an optimizer's in-place update reaches the table
    assert torch.equal(layer._up[16], layer.up[1][0])


def test_deepcopy_is_independent_and_correct():
    layer = grown_layer()
    x = torch.randn(5, 8)
    clone = copy.deepcopy(layer)
    with torch.no_grad():
        clone.up[1].mul_(0.0)
        clone.up[0].mul_(0.0)
    assert torch.count_nonzero(clone(x)) == 0  # the copy reads its own weights
    assert torch.count_nonzero(layer(x)) > 0  # the original is untouched


def test_state_dict_round_trip_and_dtype_conversion():
    layer = grown_layer()
    x = torch.randn(5, 8)
    other = PEER(8, num_experts=16, heads=2, topk=3)
    other.grow(2)
    other.load_state_dict(layer.state_dict())
    other.eval()
    assert torch.equal(other(x), layer(x))
    assert other._aliased(other.up, other._up)

    double = copy.deepcopy(layer).double()
    assert double._up.dtype == torch.float64 and double._aliased(double.up, double._up)
    torch.testing.assert_close(double(x.double()).float(), layer(x), rtol=1e-5, atol=1e-6)


def test_functional_call_uses_the_given_tensors():
    layer = grown_layer()
    x = torch.randn(5, 8)
    params = {k: v.detach().clone() for k, v in layer.named_parameters()}
    params["up.0"] = params["up.0"] * 2
    params["up.1"] = params["up.1"] * 2
    out = torch.func.functional_call(layer, params, (x,))
    torch.testing.assert_close(out, 2 * layer(x))

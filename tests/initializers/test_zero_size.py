"""Zero-size tensors and layers (``nn.Linear(0, 5)``): every tensor-level function and every
scheme leaves them as they are with a warning, as ``torch.nn.init`` does, and initializes the
rest of the model; the report names the skipped parameters."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from initlab.initializers import (
    SCHEMES,
    delta_orthogonal_,
    he_,
    identity_,
    initialize,
    lecun_,
    orthogonal_,
    sparse_,
    truncated_normal_,
    variance_scaling_,
    xavier_,
)
from initlab.models.activations import activation_factory
from initlab.models.resnet import ResNet

from .conftest import TRANSFORMER_ONLY

TENSOR_FNS = {
    "he_": he_,
    "he_fan_out": lambda t: he_(t, mode="fan_out"),
    "xavier_": xavier_,
    "lecun_": lecun_,
    "variance_scaling_": lambda t: variance_scaling_(t, 2.0, "fan_out", "uniform"),
    "variance_scaling_truncated": lambda t: variance_scaling_(t, 1.0, "fan_in",
                                                              "truncated_normal"),
    "orthogonal_": orthogonal_,
    "delta_orthogonal_": delta_orthogonal_,
    "identity_": identity_,
    "sparse_": sparse_,
    "sparse_sparsity": lambda t: sparse_(t, sparsity=0.5),
    "truncated_normal_": truncated_normal_,
}
RESIDUAL_ONLY = ("fixup", "zero_residual")


@pytest.mark.parametrize("shape", [(0, 1), (5, 0), (0, 4, 3, 3), (8, 0, 2)])
@pytest.mark.parametrize("name", sorted(TENSOR_FNS))
def test_tensor_functions_warn_and_return_a_zero_element_tensor(name: str, shape) -> None:
    tensor = torch.empty(shape)
    with pytest.warns(UserWarning, match=r"has zero elements; initializing it is a no-op"):
        out = TENSOR_FNS[name](tensor)
    assert out is tensor and out.shape == shape


def test_bad_arguments_are_refused_before_the_empty_check() -> None:
    with pytest.raises(ValueError, match="at least 2 dims"):
        orthogonal_(torch.empty(0))
    with pytest.raises(ValueError, match="init.mode='fan_sideways'"):
        he_(torch.empty(0, 1), mode="fan_sideways")
    with pytest.raises(ValueError, match="init.sparsity=1.5"):
        sparse_(torch.empty(0, 3), sparsity=1.5)
    # explicit fans of 0 for a tensor that has elements: a clear error, not a ZeroDivisionError
    from initlab.initializers import Fans

    with pytest.raises(ValueError, match="fans > 0"):
        variance_scaling_(torch.empty(2, 2), fans=Fans(0, 2))


def _with_zero_layers() -> nn.Sequential:
    # 4 -> 6 -> 0 -> 3: layer 2 has no outputs, layer 3 no inputs (its output is its bias)
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 0), nn.Linear(0, 3))


@pytest.mark.parametrize("scheme", sorted(set(SCHEMES) - set(RESIDUAL_ONLY) - TRANSFORMER_ONLY))
def test_every_scheme_skips_zero_size_layers_and_initializes_the_others(scheme: str) -> None:
    data = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own warning when building Linear(0, 3)
        model, alone = _with_zero_layers(), nn.Sequential(nn.Linear(4, 6))
    with pytest.warns(UserWarning, match=rf"init={scheme}: left 3 parameter\(s\) unchanged") as rec:
        report = initialize(model, scheme, activation="relu", seed=3, data=data)
    msg = str(rec[0].message)
    for named in ("2.weight (shape 0x6", "2.bias (shape 0,", "3.weight (shape 3x0"):
        assert named in msg, named
    for layer, param in (("2", "weight"), ("2", "bias"), ("3", "weight")):
        assert report.find(layer, param)["rule"] == "skipped (zero elements)"
    assert not report.find("0", "weight")["rule"].startswith("skipped")
    # the first layer got exactly what the scheme gives it in a model without the empty ones
    initialize(alone, scheme, activation="relu", seed=3, data=data)
    assert torch.equal(model[0].weight, alone[0].weight) and torch.equal(model[0].bias,
                                                                         alone[0].bias)
    assert torch.isfinite(model(data)).all()


def test_a_bias_with_zero_fan_is_skipped_under_a_fan_based_rule() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _with_zero_layers()
    with torch.no_grad():
        model[3].bias.fill_(0.25)
    with pytest.warns(UserWarning, match=r"3\.bias \(shape 3, skipped \(fan_in = 0\)\)"):
        report = initialize(model, "he", activation="relu", seed=0, bias="scheme")
    assert report.find("3", "bias")["rule"] == "skipped (fan_in = 0)"
    assert torch.equal(model[3].bias, torch.full((3,), 0.25))  # left as it was
    assert report.find("0", "bias")["rule"] == "he_normal"  # a bias with a fan is drawn
    # fan_out is not 0: that bias is drawn from Var = 2 / fan_out
    with pytest.warns(UserWarning, match="left 3 parameter"):  # the zero-element ones only
        report = initialize(model, "he", activation="relu", seed=0, bias="scheme",
                            mode="fan_out")
    assert report.find("3", "bias")["rule"] == "he_normal"
    assert not torch.equal(model[3].bias, torch.full((3,), 0.25))


def test_pytorch_default_bias_of_a_zero_fan_layer_is_zero_as_in_pytorch() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = nn.Linear(0, 3), nn.Linear(0, 3)  # torch's bound: 0 for fan_in 0
        initialize(ours, "default", seed=0)
    assert torch.equal(ours.bias, torch.zeros(3)) and torch.equal(theirs.bias, torch.zeros(3))


@pytest.mark.parametrize("scheme", RESIDUAL_ONLY)
def test_residual_schemes_skip_a_zero_size_head_layer(scheme: str) -> None:
    model = ResNet((3, 8, 8), 4, activation_factory("relu"), depth=8, norm="batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.head = nn.Sequential(nn.Linear(model.head.in_features, 0), nn.Linear(0, 4))
    with pytest.warns(UserWarning, match=rf"init={scheme}: left 3 parameter"):
        report = initialize(model, scheme, activation="relu", seed=0)
    for layer, param in (("head.0", "weight"), ("head.0", "bias"), ("head.1", "weight")):
        assert report.find(layer, param)["rule"] == "skipped (zero elements)", (layer, param)
    assert report.find("stem.conv", "weight")["rule"] == "he_normal"
    out = model(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 4) and torch.isfinite(out).all()

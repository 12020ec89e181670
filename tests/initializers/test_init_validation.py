"""Every bad input raises ValueError naming the key, the value and the allowed values."""

import pytest
import torch
from torch import nn

from initlab.initializers import Initializer, initialize, variance_scaling_

BAD = [
    ("nope", {}, ["init.scheme", "'nope'", "xavier", "he", "lsuv"]),
    (
        "xavier",
        {"distribution": "gaussian"},
        ["init.distribution", "normal", "truncated_normal", "uniform"],
    ),
    ("he", {"mode": "fan_sum"}, ["init.mode", "fan_avg", "fan_in", "fan_out"]),
    ("random", {"std": -0.1}, ["init.std", "-0.1", ">= 0"]),
    ("he", {"gain": 0}, ["init.gain", "> 0", "auto", "preserve"]),
    ("lecun", {"gain": -1.5}, ["init.gain", "-1.5"]),
    ("orthogonal", {"gain": "big"}, ["init.gain", "'big'", "auto", "preserve"]),
    ("sparse", {"sparsity": 1.0}, ["init.sparsity", "1.0", "0 <= sparsity < 1"]),
    ("sparse", {"sparsity": -0.2}, ["init.sparsity"]),
    ("sparse", {"num_nonzero": 0}, ["init.num_nonzero", "integer >= 1"]),
    ("he", {"bias": "random"}, ["init.bias", "zeros", "constant", "scheme"]),
    ("he", {"recurrent": "eye"}, ["init.recurrent", "null", "orthogonal", "identity"]),
    ("variance_scaling", {"scale": 0}, ["init.scale", "> 0"]),
    ("lsuv", {"tol": 0}, ["init.tol"]),
    ("he", {"std": 0.1}, ["init.std", "not a parameter", "'he'", "distribution", "gain", "mode"]),
]


@pytest.mark.parametrize(("scheme", "params", "needles"), BAD)
def test_bad_config_raises_naming_the_key(scheme, params, needles):
    for build in (
        lambda: Initializer(scheme, **params),
        lambda: initialize(nn.Linear(3, 3), scheme, seed=0, data=torch.zeros(1, 3), **params),
    ):
        with pytest.raises(ValueError) as info:
            build()
        for needle in needles:
            assert needle in str(info.value)


def test_fan_rule_on_1d_tensor():
    with pytest.raises(ValueError, match="at least 2 dims"):
        variance_scaling_(torch.empty(7))


def test_bad_seed_and_activation():
    with pytest.raises(ValueError, match="seed"):
        initialize(nn.Linear(2, 2), "he", seed=1.5)
    with pytest.raises(ValueError, match="activation.name='swish'"):
        initialize(nn.Linear(2, 2), "he", activation="swish")


def test_lazy_modules_must_be_materialized():
    with pytest.raises(ValueError, match="lazy parameter"):
        initialize(nn.Sequential(nn.LazyLinear(4)), "he", seed=0)

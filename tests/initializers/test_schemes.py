"""Variance-scaling schemes sample the exact target distribution (Kolmogorov-Smirnov) and
every scheme's std/bound matches its formula; layer coverage and the bias option."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from initlab.initializers import TRUNC_STD, initialize

# Linear(300 -> 200): fan_in 300, fan_out 200. Conv2d(64 -> 128, 3x3): fan_in 576, fan_out 1152.
SHAPES = {
    "2d": (lambda: nn.Linear(300, 200), 300, 200),
    "4d": (lambda: nn.Conv2d(64, 128, 3), 576, 1152),
}
# Expected variance of each scheme as a function of (fan for the mode, params): the papers'.
VARIANCE = {
    "xavier": lambda fan: 1.0 / fan,  # gain 1, fan_avg = (fan_in + fan_out) / 2
    "he": lambda fan: 2.0 / fan,  # gain sqrt(2) (auto, no activation)
    "lecun": lambda fan: 1.0 / fan,
    "variance_scaling": lambda fan: 2.5 / fan,  # scale=2.5 below
}
EXTRA = {"variance_scaling": {"scale": 2.5}}


def target(distribution: str, std: float):
    if distribution == "normal":
        return stats.norm(scale=std)
    if distribution == "uniform":
        bound = std * math.sqrt(3)
        return stats.uniform(loc=-bound, scale=2 * bound)
    return stats.truncnorm(-2, 2, scale=std / TRUNC_STD)


def sampled(scheme: str, shape: str, seed: int = 0, **params) -> tuple[np.ndarray, dict]:
    layer = SHAPES[shape][0]()
    report = initialize(nn.Sequential(layer), scheme, seed=seed, **params)
    return layer.weight.detach().flatten().double().numpy(), report.find("0")


def select(mode: str, fan_in: int, fan_out: int) -> float:
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


def test_trunc_std_constant():
    assert stats.truncnorm(-2, 2).std() == pytest.approx(TRUNC_STD, rel=1e-12)


@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("shape", ["2d", "4d"])
@pytest.mark.parametrize("scheme", sorted(VARIANCE))
def test_variance_scaling_ks(scheme, shape, mode, distribution):
    params = {"mode": mode, "distribution": distribution, **EXTRA.get(scheme, {})}
    values, row = sampled(scheme, shape, seed=11, **params)
    std = math.sqrt(VARIANCE[scheme](select(mode, *SHAPES[shape][1:])))
    assert row["std"] == pytest.approx(std, rel=1e-12)
    assert stats.kstest(values, target(distribution, std).cdf).pvalue > 1e-4
    # Power: the same samples clearly reject a 1.2x larger variance.
    assert stats.kstest(values, target(distribution, std * math.sqrt(1.2)).cdf).pvalue < 1e-6


@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
@pytest.mark.parametrize("shape", ["2d", "4d"])
def test_random_ks(shape, distribution):
    values, row = sampled("random", shape, seed=5, std=0.05, distribution=distribution)
    assert row["std"] == 0.05
    assert stats.kstest(values, target(distribution, 0.05).cdf).pvalue > 1e-4
    assert stats.kstest(values, target(distribution, 0.05 * math.sqrt(1.2)).cdf).pvalue < 1e-6


@pytest.mark.parametrize(
    ("scheme", "params", "shape", "std"),
    [
        ("he", {}, (256, 512), math.sqrt(2 / 512)),
        ("he", {"mode": "fan_out"}, (256, 512), math.sqrt(2 / 256)),
        ("xavier", {"distribution": "normal"}, (256, 512), math.sqrt(2 / (256 + 512))),
        ("lecun", {}, (256, 512), math.sqrt(1 / 512)),
        ("lecun", {"gain": 3.0}, (256, 512), 3 * math.sqrt(1 / 512)),
        ("variance_scaling", {"scale": 0.5, "mode": "fan_avg"}, (256, 512), math.sqrt(0.5 / 384)),
        ("random", {}, (256, 512), 0.01),
        ("default", {}, (256, 512), 1 / math.sqrt(512) / math.sqrt(3)),
        ("orthogonal", {"gain": 2.0}, (256, 512), 2 / math.sqrt(512)),
        ("sparse", {"num_nonzero": 512}, (256, 512), 1.0),
    ],
)
def test_empirical_std_matches_formula(scheme, params, shape, std):
    layer = nn.Linear(shape[1], shape[0])
    row = initialize(nn.Sequential(layer), scheme, seed=2, **params).find("0")
    assert row["std"] == pytest.approx(std, rel=1e-9)
    assert layer.weight.std().item() == pytest.approx(std, rel=0.02)


def test_uniform_bounds():
    layer = nn.Linear(400, 100)
    row = initialize(nn.Sequential(layer), "xavier", seed=0).find("0")
    bound = math.sqrt(6 / 500)  # Glorot & Bengio eq. 16
    assert row["bound"] == pytest.approx(bound)
    assert layer.weight.abs().max().item() <= bound
    assert layer.weight.abs().max().item() > 0.99 * bound
    row = initialize(nn.Sequential(layer), "he", seed=0, distribution="truncated_normal").find("0")
    assert (
        layer.weight.abs().max().item()
        <= row["bound"]
        == pytest.approx(2 * math.sqrt(2 / 400) / TRUNC_STD)
    )


def test_he_auto_gain_reads_leaky_relu_slope_and_keeps_sqrt2_otherwise():
    for activation, gain in [
        (nn.LeakyReLU(0.2), math.sqrt(2 / 1.04)),
        ("relu", math.sqrt(2)),
        ("tanh", math.sqrt(2)),
        (None, math.sqrt(2)),
    ]:
        row = initialize(nn.Linear(10, 10), "he", activation=activation, seed=0).find("Linear")
        assert row["gain"] == pytest.approx(gain)
    row = initialize(nn.Linear(10, 10), "xavier", activation="tanh", gain="auto", seed=0)
    assert row.find("Linear")["gain"] == pytest.approx(5 / 3)


def test_zeros_constant_default():
    layer = nn.Linear(50, 20)
    initialize(layer, "zeros", seed=0)
    assert not layer.weight.any() and not layer.bias.any()
    initialize(layer, "constant", value=0.3)
    assert torch.all(layer.weight == 0.3) and not layer.bias.any()
    initialize(layer, "default", seed=0)
    bound = 1 / math.sqrt(50)  # PyTorch: kaiming_uniform(a=sqrt(5)) and bias U(+-1/sqrt(fan_in))
    for tensor in (layer.weight, layer.bias):
        assert tensor.abs().max().item() <= bound and tensor.std().item() > 0.3 * bound


def test_default_rnn_and_embedding_follow_pytorch():
    rnn, emb = nn.GRU(6, 9), nn.Embedding(500, 40)
    initialize(nn.ModuleList([rnn, emb]), "default", seed=0)
    bound = 1 / 3  # 1 / sqrt(hidden_size)
    for tensor in rnn.parameters():
        assert tensor.abs().max().item() <= bound and tensor.std().item() > 0.4 * bound
    assert emb.weight.std().item() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize(
    ("option", "check"),
    [
        ("zeros", lambda b, fan: not b.any()),
        ("constant", lambda b, fan: torch.all(b == 0.1)),
        ("scheme", lambda b, fan: b.std().item() == pytest.approx(math.sqrt(2 / fan), rel=0.1)),
    ],
)
def test_bias_option(option, check):
    layer = nn.Linear(64, 2000)
    row = initialize(layer, "he", seed=0, bias=option, bias_value=0.1).find("Linear", "bias")
    assert check(layer.bias.detach(), 64)
    assert row["rule"] == {"zeros": "zeros", "constant": "constant", "scheme": "he_normal"}[option]


def test_default_bias_scheme_is_pytorch_uniform():
    layer = nn.Linear(16, 4000)
    initialize(layer, "default", seed=0)
    assert layer.bias.abs().max().item() <= 0.25
    assert layer.bias.std().item() == pytest.approx(0.25 / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize(
    "norm",
    [
        nn.BatchNorm1d(8),
        nn.BatchNorm2d(8),
        nn.LayerNorm(8),
        nn.GroupNorm(2, 8),
        nn.InstanceNorm2d(8, affine=True),
    ],
    ids=lambda m: type(m).__name__,
)
@pytest.mark.parametrize("scheme", ["he", "zeros", "orthogonal", "default"])
def test_norm_layers_get_one_and_zero(norm, scheme):
    with torch.no_grad():
        norm.weight.uniform_(2, 3)
        norm.bias.uniform_(2, 3)
    initialize(nn.Sequential(nn.Linear(8, 8), norm), scheme, seed=0, bias="constant")
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


def _gate_blocks(rnn: nn.Module, name: str) -> list[torch.Tensor]:
    weight = getattr(rnn, name).detach()
    return list(weight.chunk(weight.shape[0] // rnn.hidden_size))


@pytest.mark.parametrize(
    "rnn",
    [
        nn.RNN(5, 8, num_layers=2, bidirectional=True),
        nn.LSTM(5, 8),
        nn.GRU(5, 8),
        nn.LSTMCell(5, 8),
    ],
    ids=lambda m: type(m).__name__,
)
def test_rnn_coverage_and_recurrent_option(rnn):
    suffix = "_l0" if isinstance(rnn, nn.RNNBase) else ""
    report = initialize(rnn, "xavier", seed=0, recurrent="identity", bias="constant")
    row = report.find(type(rnn).__name__, f"weight_ih{suffix}")
    assert (row["fan_in"], row["fan_out"]) == (5, 8)  # one gate block: hidden x input
    assert row["std"] == pytest.approx(math.sqrt(2 / 13))
    for block in _gate_blocks(rnn, f"weight_hh{suffix}"):
        assert torch.equal(block, torch.eye(8))
    assert all(torch.all(p == 0) for n, p in rnn.named_parameters() if n.startswith("bias"))

    initialize(rnn, "he", seed=0, recurrent="orthogonal")
    for block in _gate_blocks(rnn, f"weight_hh{suffix}"):
        assert torch.allclose(block @ block.T, torch.eye(8), atol=1e-5)
    initialize(rnn, "orthogonal", seed=0)  # recurrent null: the scheme itself, per gate
    for block in _gate_blocks(rnn, f"weight_ih{suffix}"):  # tall 8 x 5 blocks
        assert torch.allclose(block.T @ block, torch.eye(5), atol=1e-5)


def test_rnn_uses_its_own_nonlinearity_for_auto_gain():
    rnn = nn.RNN(4, 4, nonlinearity="relu")
    row = initialize(rnn, "lecun", activation="tanh", gain="auto", seed=0).find(
        "RNN", "weight_hh_l0"
    )
    assert row["gain"] == pytest.approx(math.sqrt(2))


def test_embedding_padding_row_and_fans():
    emb = nn.Embedding(50, 16, padding_idx=3)
    row = initialize(emb, "lecun", seed=0).find("Embedding")
    assert (row["fan_in"], row["fan_out"], row["std"]) == (1, 16, 1.0)
    assert not emb.weight[3].any() and emb.weight[4].any()


def test_shared_parameters_initialized_once_and_prelu_left_alone():
    shared = nn.Linear(8, 8)
    prelu = nn.PReLU()
    model = nn.Sequential(shared, prelu, shared)
    report = initialize(model, "he", seed=0)
    assert [r["layer"] for r in report if r["param"] == "weight"] == ["0", "1"]
    assert report.find("1")["rule"] == "unchanged" and prelu.weight.item() == 0.25


def test_sparse_counts():
    layer = nn.Linear(100, 40)
    initialize(layer, "sparse", seed=0)
    assert torch.all((layer.weight != 0).sum(dim=1) == 15)
    initialize(layer, "sparse", seed=0, sparsity=0.75)
    assert torch.all((layer.weight != 0).sum(dim=1) == 25)
    initialize(layer, "sparse", seed=0, num_nonzero=500)
    assert torch.all(layer.weight != 0)
    conv = nn.Conv2d(4, 6, 3)
    initialize(conv, "sparse", seed=0, num_nonzero=5, std=0.5)
    assert torch.all((conv.weight.reshape(6, -1) != 0).sum(dim=1) == 5)


def test_sparse_refuses_a_sparsity_that_keeps_no_weight():
    # 0.96 of 10 inputs rounds to 10 zeros: the unit would be all zeros
    with pytest.raises(ValueError, match=r"0.weight: init.sparsity=0.96 leaves no nonzero "
                                         r"weight in a unit with 10 inputs; allowed: "
                                         r"0 <= x < 0.95"):
        initialize(nn.Sequential(nn.Linear(10, 5)), "sparse", seed=0, sparsity=0.96)
    layer = nn.Linear(10, 5)
    initialize(layer, "sparse", seed=0, sparsity=0.94)  # rounds to 9 zeros: one kept
    assert torch.all((layer.weight != 0).sum(dim=1) == 1)

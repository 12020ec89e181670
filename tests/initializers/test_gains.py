"""gain=auto matches torch.nn.init.calculate_gain; gain=preserve makes q=1 a fixed point."""

import math

import pytest
import torch
from scipy import integrate, stats
from torch import nn

from initlab.initializers import gain_for, initialize, preserve_gain
from initlab.models.activations import ACTIVATIONS, make_activation

TORCH_COVERED = [
    ("linear", None, "linear", None),
    ("sigmoid", None, "sigmoid", None),
    ("tanh", None, "tanh", None),
    ("relu", None, "relu", None),
    ("selu", None, "selu", None),
    ("leaky_relu", None, "leaky_relu", None),
    ("leaky_relu", 0.2, "leaky_relu", 0.2),
]


@pytest.mark.parametrize(("name", "slope", "torch_name", "param"), TORCH_COVERED)
def test_auto_equals_calculate_gain(name, slope, torch_name, param):
    expected = nn.init.calculate_gain(torch_name, param)
    module = make_activation(name, **({"negative_slope": slope} if slope is not None else {}))
    assert gain_for(module, "auto") == pytest.approx(expected, rel=1e-12)
    if slope is None:
        assert gain_for(name, "auto") == pytest.approx(expected, rel=1e-12)


def test_auto_without_activation_is_linear_and_numbers_pass_through():
    assert gain_for(None, "auto") == 1.0
    assert gain_for("tanh", 0.7) == 0.7


@pytest.mark.parametrize("name", ["gelu", "silu", "elu", "softsign"])
def test_auto_falls_back_to_preserve(name):
    assert gain_for(name, "auto") == preserve_gain(make_activation(name))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_preserve_matches_quadrature(name):
    phi = make_activation(name).double()

    def integrand(z: float) -> float:
        value = phi(torch.tensor([z], dtype=torch.float64)).item()
        return value * value * stats.norm.pdf(z)

    second_moment = sum(
        integrate.quad(integrand, a, b, limit=200)[0]
        for a, b in [(-math.inf, 0.0), (0.0, math.inf)]
    )
    assert gain_for(name, "preserve") == pytest.approx(second_moment**-0.5, rel=1e-6)


def test_preserve_known_values():
    assert gain_for("relu", "preserve") == pytest.approx(math.sqrt(2), rel=1e-6)
    assert gain_for("linear", "preserve") == pytest.approx(1.0, rel=1e-9)
    # SELU is built so that E[selu(z)^2] = 1 for z ~ N(0, 1).
    assert gain_for("selu", "preserve") == pytest.approx(1.0, abs=1e-3)


def _variance_map_slope(name: str) -> float:
    """d q'/d q at q = 1 for q' = g^2 E[phi(sqrt(q) z)^2] (mean-field variance map)."""
    phi = make_activation(name)
    g = gain_for(name, "preserve")
    z = torch.linspace(-12, 12, 24001, dtype=torch.float64)
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    def moment(q: float) -> float:
        return torch.trapezoid(phi(math.sqrt(q) * z) ** 2 * pdf, z).item()

    return g * g * (moment(1.01) - moment(0.99)) / 0.02


def _deep_mlp(name: str, depth: int = 50, width: int = 256) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), make_activation(name)]
    return nn.Sequential(*layers[:-1])


def _second_moments(model: nn.Sequential, x: torch.Tensor) -> list[float]:
    moments = []
    with torch.no_grad():
        for module in model:
            x = module(x)
            if isinstance(module, nn.Linear):
                moments.append(x.pow(2).mean().item())
    return moments


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_preserve_is_a_fixed_point_of_one_wide_layer(name):
    """Pre-activations of second moment 1 -> next pre-activations of second moment 1."""
    g = gain_for(name, "preserve")
    width, batch = 1024, 1024
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch, width, generator=gen)
    layer = nn.Linear(width, width)
    initialize(layer, "lecun", activation=name, gain="preserve", seed=1)
    with torch.no_grad():
        out = layer(make_activation(name)(z))
    assert layer.weight.std().item() == pytest.approx(g / width**0.5, rel=0.01)
    assert out.pow(2).mean().item() == pytest.approx(1.0, rel=0.05)


# Mean-field slope of the variance map at the fixed point q = 1: < 1 attracts, = 1 is
# marginal (relu, leaky_relu, linear: log q does a random walk with per-layer std about
# sqrt(2 / width) ~ 0.09, i.e. ~0.6 over 49 layers, so the band is e^(+-3.3 * 0.63) ~ [1/8, 8]),
# > 1 repels (gelu, silu: every finite-width fluctuation grows like slope^depth, so no
# fan_in-scaled gain keeps a 50-layer net at constant variance; only the one-layer fixed
# point above holds for them).
STABLE = ["elu", "selu", "sigmoid", "softsign", "tanh"]
MARGINAL = ["leaky_relu", "linear", "relu"]
UNSTABLE = ["gelu", "silu"]


def test_stability_classes_cover_all_activations():
    assert sorted(STABLE + MARGINAL + UNSTABLE) == sorted(ACTIVATIONS)
    for name in STABLE:
        assert _variance_map_slope(name) < 0.95
    for name in MARGINAL:
        assert _variance_map_slope(name) == pytest.approx(1.0, abs=1e-3)
    for name in UNSTABLE:
        assert _variance_map_slope(name) > 1.1


@pytest.mark.parametrize(
    ("name", "band"),
    [(n, (0.5, 2.0)) for n in STABLE] + [(n, (1 / 8, 8.0)) for n in MARGINAL],
)
def test_preserve_keeps_variance_through_50_layers(name, band):
    g = gain_for(name, "preserve")
    model = _deep_mlp(name)
    report = initialize(model, "lecun", activation=name, gain="preserve", seed=3)
    assert all(row["gain"] == pytest.approx(g) for row in report if row["param"] == "weight")
    x = torch.randn(512, 256, generator=torch.Generator().manual_seed(4)) / g
    moments = _second_moments(model, x)
    ratio = moments[-1] / moments[0]
    assert band[0] <= ratio <= band[1], f"{name}: q50/q1 = {ratio:.3g}"


def test_deep_relu_band_has_power():
    """A 5% gain error compounds to 1.05^(2 * 49) ~ 120 over 49 layers: far outside [1/8, 8]."""
    model = _deep_mlp("relu")
    initialize(model, "lecun", activation="relu", gain=1.05 * math.sqrt(2), seed=3)
    x = torch.randn(512, 256, generator=torch.Generator().manual_seed(4))
    moments = _second_moments(model, x / math.sqrt(2))
    assert moments[-1] / moments[0] > 8.0


def test_preserve_with_inplace_activation():
    assert gain_for(nn.ReLU(inplace=True), "preserve") == pytest.approx(math.sqrt(2), rel=1e-6)

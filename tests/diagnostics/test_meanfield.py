"""Mean-field formulas pinned against closed forms, the literature and measured networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab.diagnostics import probe, summarize_probe
from initlab.diagnostics.meanfield import (
    closed_form,
    critical_sigma_w2,
    length_map,
    meanfield,
    meanfield_from_model,
)


def test_relu_he_is_critical():
    r = meanfield("relu", 2.0, 0.0)
    assert r["chi_1"] == pytest.approx(1.0, abs=1e-12)
    assert r["converged"] and r["xi_c"] == math.inf


@pytest.mark.parametrize("sigma_w2", [0.3, 0.9, 1.5])
def test_linear_chi1_is_sigma_w2(sigma_w2):
    assert meanfield("linear", sigma_w2, 0.0)["chi_1"] == pytest.approx(sigma_w2, rel=1e-12)


@pytest.mark.parametrize(
    ("act", "sw2", "sb2"),
    [("relu", 1.0, 0.1), ("relu", 1.9, 0.3), ("linear", 0.5, 0.1), ("relu", 2.0, 0.0)],
)
def test_quadrature_matches_closed_form(act, sw2, sb2):
    r, c = meanfield(act, sw2, sb2), closed_form(act, sw2, sb2)
    assert r["q_star"] == pytest.approx(c["q_star"], rel=1e-9)
    assert r["chi_1"] == pytest.approx(c["chi_1"], rel=1e-12)
    assert length_map(0.7, act, sw2, sb2) == pytest.approx(
        sw2 * 0.7 * (0.5 if act == "relu" else 1.0) + sb2, rel=1e-12
    )
    # ReLU / linear: the length map is affine in q, so xi_q = xi_c = -1 / ln(chi_1).
    if c["chi_1"] < 1:
        assert r["xi_q"] == pytest.approx(-1 / math.log(c["chi_1"]), rel=1e-9)
        assert r["xi_c"] == pytest.approx(r["xi_q"], rel=1e-9)


@pytest.mark.parametrize(("sw2", "sb2"), [(3.0, 0.0), (2.0, 0.1)])
def test_relu_length_map_divergence_is_reported(sw2, sb2):
    r = meanfield("relu", sw2, sb2)
    assert r["q_star"] == math.inf and not r["converged"]
    assert r["chi_1"] == pytest.approx(sw2 / 2)  # scale-free: still defined
    assert closed_form("relu", sw2, sb2)["q_star"] == math.inf


@pytest.mark.parametrize("sw2", [1.0, 1.5, 1.98])
def test_relu_without_bias_below_two_has_q_star_zero_and_chi1_half_sigma_w2(sw2):
    # q* = 0, and chi_1 is the limit q -> 0+ of sigma_w^2 E[relu'(sqrt(q) z)^2] = sw2 / 2
    # (relu is scale-free), not sigma_w^2 relu'(0)^2 = 0
    r = meanfield("relu", sw2, 0.0)
    assert r["converged"] and r["q_star"] == pytest.approx(0.0, abs=1e-9)
    assert r["chi_1"] == pytest.approx(sw2 / 2, rel=1e-12)
    assert r["xi_c"] == pytest.approx(-1 / math.log(sw2 / 2), rel=1e-9)


def test_he_relu_models_get_chi1_half_their_sigma_w2_on_both_sides_of_two():
    # sampled He weights give sigma_w^2 a little above or below 2: chi_1 = sigma_w^2 / 2
    # either way (below 2 it used to come out as 0)
    sides = set()
    for seed in range(8):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                              nn.Linear(64, 10))
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        r = meanfield_from_model(model)
        assert r["chi_1"] == pytest.approx(r["sigma_w2"] / 2, rel=1e-9), seed
        sides.add(r["sigma_w2"] < 2)
    assert sides == {True, False}  # both cases were met


def test_tanh_critical_line():
    # Schoenholz et al. 2017 (Fig. 1): sigma_b^2 = 0.05 is critical near sigma_w^2 = 1.76.
    assert critical_sigma_w2("tanh", 0.05) == pytest.approx(1.76, abs=0.01)
    # Without bias the transition is at sigma_w^2 = 1 with q* = 0 (tanh'(0) = 1).
    r = meanfield("tanh", 1.0, 0.0)
    assert r["q_star"] == pytest.approx(0.0, abs=1e-9) and r["chi_1"] == pytest.approx(1.0)


def test_chaotic_phase_has_stable_correlation_below_one():
    r = meanfield("tanh", 2.5, 0.05)
    assert r["chi_1"] > 1
    assert 0 < r["c_star"] < 1 and r["chi_c"] < 1
    assert r["xi_c"] == pytest.approx(-1 / math.log(r["chi_c"]))
    ordered = meanfield("tanh", 1.0, 0.05)
    assert ordered["c_star"] == 1.0 and ordered["chi_c"] == ordered["chi_1"]


def tanh_mlp(sw2: float, sb2: float, depth: int = 12, width: int = 512) -> nn.Sequential:
    gen = torch.Generator().manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        with torch.no_grad():
            lin.weight.normal_(0.0, math.sqrt(sw2 / width), generator=gen)
            lin.bias.normal_(0.0, math.sqrt(sb2), generator=gen)
        layers += [lin, nn.Tanh()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


@pytest.mark.parametrize(("sw2", "phase"), [(1.0, "ordered"), (1.76, "critical"), (2.5, "chaotic")])
def test_measured_gradient_growth_matches_chi1(sw2, phase):
    sb2, width = 0.05, 512
    theory = meanfield("tanh", sw2, sb2)
    model = tanh_mlp(sw2, sb2, width=width)
    # Input scaled so that the first pre-activation variance is already q*.
    scale = math.sqrt((theory["q_star"] - sb2) / sw2)
    x = torch.randn(256, width, generator=torch.Generator().manual_seed(1)) * scale
    df = probe(model, x)
    q = (df["preact_std"].iloc[:-1] ** 2).to_numpy()
    assert q == pytest.approx(theory["q_star"], rel=0.2)  # finite width: a few % per layer
    assert q.mean() == pytest.approx(theory["q_star"], rel=0.05)
    measured = summarize_probe(df)["measured_chi1"]
    assert measured == pytest.approx(theory["chi_1"], rel=0.05)  # observed: within 1.5%
    if phase == "ordered":
        assert measured < 0.9
    elif phase == "critical":
        assert abs(measured - 1) < 0.03
    else:
        assert measured > 1.05

    from_model = meanfield_from_model(model)
    assert from_model["activation"] == "tanh"
    assert from_model["sigma_w2"] == pytest.approx(sw2, rel=0.01)
    assert from_model["sigma_b2"] == pytest.approx(sb2, rel=0.15)  # 11 x 512 bias draws


def test_meanfield_from_model_reads_init_and_activation():
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(4):
        lin = nn.Linear(300, 300, bias=False)
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        layers += [lin, nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(300, 2))
    r = meanfield_from_model(model)
    assert r["activation"] == "relu" and r["sigma_b2"] == 0.0
    assert r["sigma_w2"] == pytest.approx(2.0, rel=0.02)
    assert meanfield_from_model(model, "linear")["chi_1"] == pytest.approx(r["sigma_w2"])

"""probe / summarize_probe: signal-propagation numbers and state preservation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import initlab
from initlab.diagnostics import probe, summarize_probe
from initlab.diagnostics.probe import dead_unit_counts, dead_units, member_dead_counts


def relu_mlp(init: str, depth: int = 20, width: int = 256, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        if init == "he":
            nn.init.kaiming_normal_(lin.weight, mode="fan_in", nonlinearity="relu")
        else:
            nn.init.xavier_normal_(lin.weight, gain=1.0)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def gauss_inputs() -> torch.Tensor:
    return torch.randn(512, 256, generator=torch.Generator().manual_seed(1))


def test_he_keeps_relu_activation_scale(gauss_inputs):
    df = probe(relu_mlp("he"), gauss_inputs)
    hidden = df.iloc[:-1]
    ratio = hidden["act_std"].iloc[-1] / hidden["act_std"].iloc[0]
    assert 0.5 < ratio < 2.0
    assert list(df["activation"]) == ["relu"] * 20 + ["none"]
    assert df["act_std"].iloc[-1] == df["preact_std"].iloc[-1]  # output layer: act = preact


def test_xavier_halves_relu_second_moment_per_layer(gauss_inputs):
    # Xavier (gain 1) on square layers gives Var(W) * fan_in = 1, so for ReLU
    # E[h_{l+1}^2] = E[relu(h_l)^2] = E[h_l^2] / 2 (He et al. 2015, eq. 7-9).
    df = probe(relu_mlp("xavier"), gauss_inputs).iloc[:-1]
    m2 = (df["preact_std"] ** 2 + df["preact_mean"] ** 2).to_numpy()
    geo_ratio = math.exp(math.log(m2[-1] / m2[0]) / (len(m2) - 1))
    assert 0.4 <= geo_ratio <= 0.6


def test_rows_follow_forward_order_not_registration_order():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(8, 3)  # registered first, runs last
            self.body = nn.Linear(4, 8)
            self.act = nn.Tanh()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.act(self.body(x)))

    df = probe(Net(), torch.randn(16, 4))
    assert list(df["layer"]) == ["body", "head"]
    assert list(df["index"]) == [0, 1]
    assert list(df["activation"]) == ["tanh", "none"]
    assert df.loc[0, ["fan_in", "fan_out"]].tolist() == [4, 8]


def test_norm_between_layer_and_activation_and_conv_units():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3),
        nn.BatchNorm2d(6),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 2),
    )
    df = probe(model, torch.randn(8, 3, 8, 8), torch.tensor([0, 1] * 4))
    assert df.attrs["loss"] == "cross_entropy"
    conv = df.iloc[0]
    assert conv["type"] == "Conv2d" and conv["activation"] == "relu"
    assert (conv["fan_in"], conv["fan_out"]) == (27, 54)
    # BatchNorm in train mode: the ReLU input is standardized, so about half is zeroed.
    assert 0.3 < conv["act_mean"] < 0.5
    assert math.isfinite(conv["grad_std"]) and conv["grad_std"] > 0


def test_inplace_activation_does_not_leak_into_preactivation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(inplace=True), nn.Linear(16, 1))
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    df = probe(model, x, y)
    h = model[0](x)
    (g,) = torch.autograd.grad(nn.functional.mse_loss(model[2](torch.relu(h)), y), h)
    assert df.loc[0, "preact_mean"] == pytest.approx(h.mean().item(), abs=1e-6)
    assert df.loc[0, "grad_std"] == pytest.approx(g.std(correction=0).item(), rel=1e-5)


def test_dead_relu_layer():
    lin = nn.Linear(5, 7)
    nn.init.zeros_(lin.weight)
    nn.init.constant_(lin.bias, -1.0)
    df = probe(nn.Sequential(lin, nn.ReLU(), nn.Linear(7, 1)), torch.randn(32, 5))
    assert df.loc[0, "dead_frac"] == 1.0
    assert df.loc[0, "act_std"] == 0.0


def test_saturated_sigmoid():
    torch.manual_seed(0)
    lin = nn.Linear(20, 30)
    nn.init.normal_(lin.weight, std=100.0)
    df = probe(nn.Sequential(lin, nn.Sigmoid(), nn.Linear(30, 1)), torch.randn(64, 20))
    assert df.loc[0, "saturated_frac"] > 0.95
    assert df.loc[1, "saturated_frac"] == 0.0  # unbounded (no activation): 0 by definition


def test_probe_leaves_model_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.5), nn.Linear(12, 3)
    )
    x, y = torch.randn(20, 6), torch.randint(0, 3, (20,))
    model(x).sum().backward()  # some .grad set
    model[4].weight.grad = None  # and one None
    model.eval()
    model[1].train()  # mixed modes must come back as they were
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    before_grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()

    df = initlab.probe(model, x, y, jacobian=True)

    assert len(df) == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, before_state[k]), k
    for p, g in zip(model.parameters(), before_grads, strict=True):
        assert (p.grad is None) == (g is None)
        assert g is None or torch.equal(p.grad, g)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)


def test_synthetic_loss_is_deterministic_and_mse_for_float_targets():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(32, 4)
    a, b = probe(model, x), probe(model, x)
    assert a.attrs["loss"] == "synthetic"
    assert a["grad_std"].tolist() == b["grad_std"].tolist()
    # dL/d(out) = g ~ N(0, 1): the output layer's gradient std is about 1.
    assert 0.6 < a["grad_std"].iloc[-1] < 1.4
    assert probe(model, x, torch.randn(32)).attrs["loss"] == "mse"
    custom = probe(model, x, loss_fn=lambda out, _t: out.square().mean())
    assert custom.attrs["loss"] == "custom"


def test_jacobian_of_identity_net_has_unit_singular_values():
    layers = []
    for _ in range(3):
        lin = nn.Linear(16, 16)
        with torch.no_grad():
            lin.weight.copy_(torch.eye(16))
            lin.bias.zero_()
        layers.append(lin)
    df = probe(nn.Sequential(*layers), torch.randn(10, 16), jacobian=True)
    jac = df.attrs["jacobian"]
    for key in ("mean_sq_singular_value", "max_singular_value", "min_singular_value"):
        assert jac[key] == pytest.approx(1.0, abs=1e-5)


def test_jacobian_scales_with_weights():
    torch.manual_seed(0)
    lin = nn.Linear(5, 3, bias=False)  # J = W for every example
    jac = probe(lin, torch.randn(4, 5), jacobian=True, jacobian_examples=2).attrs["jacobian"]
    expected = torch.linalg.svdvals(lin.weight.detach().double())
    assert jac["max_singular_value"] == pytest.approx(expected.max().item())
    assert jac["mean_sq_singular_value"] == pytest.approx(expected.square().mean().item())


def test_summarize_probe(gauss_inputs):
    df = probe(relu_mlp("he", depth=6), gauss_inputs)
    s = summarize_probe(df)
    assert set(s) == {
        "init_act_std_last",
        "init_grad_std_ratio",
        "init_dead_frac_max",
        "init_saturated_frac_max",
        "measured_chi1",
    }
    g = df["grad_std"].to_numpy()
    assert s["init_grad_std_ratio"] == pytest.approx(g[0] / g[-1])
    assert s["measured_chi1"] == pytest.approx((g[0] / g[5]) ** (2 / 5))  # 6 hidden rows
    assert s["init_act_std_last"] == df["act_std"].iloc[-2]
    assert 0.8 < s["measured_chi1"] < 1.25  # He + ReLU: critical, chi_1 = 1
    records = df.to_dict("records")
    assert records[0]["layer"] == "0" and isinstance(records[0]["grad_std"], float)


def _dead_by_definition(t: torch.Tensor, unit_dim: int, act: str) -> torch.Tensor:
    per_unit = t.movedim(unit_dim, 0).reshape(t.shape[unit_dim], -1)
    off = per_unit <= 0 if act in ("relu", "leaky_relu", "gelu") else per_unit == 0
    return off.all(dim=1)


def test_dead_units_and_counts_follow_the_definition() -> None:
    # a unit is dead if off on every example: <= 0 after a ReLU-like activation, == 0 else
    torch.manual_seed(0)
    outs = [torch.relu(torch.randn(50, 30) - 1.5), torch.relu(torch.randn(50, 20) - 2.0),
            torch.randn(50, 10), torch.relu(torch.randn(50, 8, 4, 4) - 2.5),
            torch.tanh(torch.randn(50, 6, 3))]
    outs[2][:, 3] = 0
    outs[4][:, 2, :] = 0
    dims, acts = [-1, -1, -1, 1, 1], ["relu", "relu", "none", "relu", "tanh"]
    want = [_dead_by_definition(o, d, a) for o, d, a in zip(outs, dims, acts, strict=True)]
    for o, d, a, w in zip(outs, dims, acts, want, strict=True):
        assert torch.equal(dead_units(o, d, a), w)
    counts = dead_unit_counts(outs, dims, acts)
    assert counts == [int(w.sum()) for w in want]
    assert min(counts[:2]) > 0 and counts[2] == 1 and counts[4] == 1  # the test bites


def test_member_dead_counts_are_each_members_own() -> None:
    # stacked outputs (K=3, B, ...): member j's count is the definition on its slice
    torch.manual_seed(1)
    outs = [torch.relu(torch.randn(3, 40, 16) - torch.tensor([0.5, 1.5, 2.5]).view(3, 1, 1)),
            torch.relu(torch.randn(3, 40, 6, 2, 2) - 2.0), torch.tanh(torch.randn(3, 40, 5))]
    outs[2][1, :, 4] = 0
    dims, acts = [-1, 1, -1], ["relu", "relu", "tanh"]
    counts = member_dead_counts(outs, dims, acts)
    assert counts.shape == (3, 3)
    for j in range(3):
        want = [int(_dead_by_definition(o[j], d, a).sum()) for o, d, a in
                zip(outs, dims, acts, strict=True)]
        assert counts[:, j].tolist() == want
    # the members differ (a per-member count, not one shared), the test bites
    assert len(set(counts[0].tolist())) > 1 and counts[2].tolist() == [0, 1, 0]

"""Fixup (Zhang et al. 2019) and zero-residual (Goyal et al. 2017) on the CIFAR ResNet:
what is zeroed, the L^(-1/(2m-2)) branch scaling, and the refusal of non-residual models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from initlab.initializers import SCHEMES, initialize
from initlab.initializers.residual import fixup_multiplier
from initlab.models.activations import activation_factory
from initlab.models.mlp import MLP
from initlab.models.resnet import ResNet

RELU = activation_factory("relu")
CONF = Path(__file__).resolve().parents[2] / "conf" / "init"


def resnet(depth: int = 20, norm: str = "none", shortcut: str = "A") -> ResNet:
    return ResNet((3, 16, 16), 10, RELU, depth=depth, norm=norm, shortcut=shortcut)


@pytest.mark.parametrize(
    "L, m, expected",
    [(9, 2, 1 / 3), (27, 2, 27 ** -0.5), (16, 3, 0.5), (1, 2, 1.0), (54, 2, 54 ** -0.5)],
)
def test_fixup_multiplier_is_L_to_minus_one_over_2m_minus_2(L, m, expected):
    assert fixup_multiplier(L, m) == pytest.approx(expected, rel=1e-12)


def test_fixup_multiplier_needs_two_layers_per_branch():
    with pytest.raises(ValueError, match="m >= 2"):
        fixup_multiplier(9, 1)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_fixup_zeroes_last_branch_layers_head_and_scalars(norm):
    model = resnet(20, norm=norm)
    with torch.no_grad():  # make every tensor visibly non-default first
        for p in model.parameters():
            p.fill_(0.7)
    report = initialize(model, "fixup", activation="relu", seed=0)
    blocks = model.residual_blocks()
    assert len(blocks) == 9
    for block in blocks:
        assert torch.count_nonzero(block.conv2.weight) == 0
        assert torch.count_nonzero(block.conv1.weight) == block.conv1.weight.numel()
        for name in ("bias1a", "bias1b", "bias2a", "bias2b"):
            assert getattr(block, name).item() == 0.0
        assert block.scale.item() == 1.0
    assert torch.count_nonzero(model.head.weight) == 0
    assert torch.count_nonzero(model.head.bias) == 0
    assert report.find("head", "weight")["rule"] == "fixup_zeros"
    assert report.find("stages.0.0.conv2", "weight")["rule"] == "fixup_zeros"
    assert report.find("stages.0.0", "scale")["rule"] == "fixup_ones"
    if norm == "batch":
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert all(torch.all(n.weight == 1) and torch.all(n.bias == 0) for n in norms)
    json.dumps(report.to_records())


def test_fixup_scales_conv1_by_the_multiplier_relative_to_he():
    """depth 20: L = 9 branches of m = 2 layers -> conv1 std = He std / 3."""
    factor = 9 ** (-1 / (2 * 2 - 2))
    assert factor == pytest.approx(1 / 3)
    fixup, he = resnet(20), resnet(20)
    initialize(fixup, "fixup", activation="relu", seed=3)
    initialize(he, "he", activation="relu", seed=3)
    # Statistical: pooled over the 9 conv1 layers, weight / (sqrt(2 / fan_in) / 3) has std 1.
    z = []
    for block in fixup.residual_blocks():
        w = block.conv1.weight.detach()
        fan_in = w[0].numel()
        z.append((w / (math.sqrt(2.0 / fan_in) * factor)).flatten())
    z = torch.cat(z)
    assert z.numel() > 50_000
    assert z.std().item() == pytest.approx(1.0, abs=0.02)
    assert abs(z.mean().item()) < 0.02
    # Exact: the same seed draws the same He weights, then Fixup multiplies by 1/3.
    for bf, bh in zip(fixup.residual_blocks(), he.residual_blocks(), strict=True):
        torch.testing.assert_close(bf.conv1.weight, bh.conv1.weight * factor)
    # Layers outside the residual branches keep plain He.
    torch.testing.assert_close(fixup.stem.conv.weight, he.stem.conv.weight)
    w = fixup.stem.conv.weight.detach()
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / w[0].numel()), rel=0.15)


def test_fixup_report_states_the_scaled_std():
    model = resnet(20)
    report = initialize(model, "fixup", activation="relu", seed=0)
    row = report.find("stages.1.1.conv1", "weight")
    assert row["std"] == pytest.approx(math.sqrt(2.0 / 288) / 3)
    assert row["actual_std"] == pytest.approx(row["std"], rel=0.1)


def test_fixup_keeps_projection_shortcuts_he():
    fixup, he = resnet(14, shortcut="B"), resnet(14, shortcut="B")
    initialize(fixup, "fixup", activation="relu", seed=1)
    initialize(he, "he", activation="relu", seed=1)
    projections = [b for b in fixup.residual_blocks() if isinstance(b.downsample, nn.Sequential)]
    assert len(projections) == 2
    for bf, bh in zip(fixup.residual_blocks(), he.residual_blocks(), strict=True):
        if isinstance(bf.downsample, nn.Sequential):
            torch.testing.assert_close(bf.downsample[0].weight, bh.downsample[0].weight)
    # 6 blocks: multiplier 6^(-1/2)
    torch.testing.assert_close(
        fixup.residual_blocks()[0].conv1.weight, he.residual_blocks()[0].conv1.weight * 6**-0.5
    )


def test_fixup_network_is_zero_function_and_blocks_are_identity_at_init():
    model = resnet(20).eval()
    initialize(model, "fixup", activation="relu", seed=0)
    x = torch.randn(4, 3, 16, 16)
    assert torch.count_nonzero(model(x)) == 0
    h = model.stem(x)
    block = model.residual_blocks()[1]  # no shape change: exactly the identity (h >= 0)
    h = model.stages[0][0](h)
    torch.testing.assert_close(block(h), h)


def test_fixup_trains_without_normalization():
    """One SGD step moves the zeroed head, then the zeroed last branch layers."""
    torch.manual_seed(0)
    model = resnet(8)
    initialize(model, "fixup", activation="relu", seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,))
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(10), rel=1e-5)
    assert losses[-1] < losses[0]
    assert torch.count_nonzero(model.residual_blocks()[0].conv2.weight) > 0


def test_zero_residual_zeroes_each_norm2_weight():
    model = resnet(20, norm="batch")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.7)
    he = resnet(20, norm="batch")
    report = initialize(model, "zero_residual", activation="relu", seed=0)
    initialize(he, "he", activation="relu", seed=0)
    for block, ref in zip(model.residual_blocks(), he.residual_blocks(), strict=True):
        assert torch.count_nonzero(block.norm2.weight) == 0
        assert torch.all(block.norm2.bias == 0)
        assert torch.all(block.norm1.weight == 1)
        torch.testing.assert_close(block.conv1.weight, ref.conv1.weight)
        torch.testing.assert_close(block.conv2.weight, ref.conv2.weight)  # He, not zero
        assert block.scale.item() == 1.0 and block.bias2b.item() == 0.0
    torch.testing.assert_close(model.head.weight, he.head.weight)
    assert report.find("stages.2.2.norm2", "weight")["rule"] == "zero_gamma"


def test_zero_residual_without_norm_zeroes_the_last_branch_conv():
    model = resnet(8, norm="none")
    report = initialize(model, "zero_residual", activation="relu", seed=0)
    for block in model.residual_blocks():
        assert torch.count_nonzero(block.conv2.weight) == 0
        assert torch.count_nonzero(block.conv1.weight) == block.conv1.weight.numel()
    assert torch.count_nonzero(model.head.weight) == model.head.weight.numel()
    assert report.find("stages.0.0.conv2", "weight")["rule"] == "zeros_last_branch_layer"


@pytest.mark.parametrize("scheme", ["fixup", "zero_residual"])
def test_refuses_a_model_without_residual_branches(scheme):
    mlp = MLP((64,), 10, RELU, depth=3, width=16)
    before = [p.clone() for p in mlp.parameters()]
    with pytest.raises(ValueError) as err:
        initialize(mlp, scheme, activation="relu", seed=0)
    msg = str(err.value)
    assert f"init={scheme}" in msg and "residual branches" in msg
    assert "model=resnet" in msg and "got MLP" in msg
    # refused before touching the weights
    assert all(torch.equal(a, b) for a, b in zip(before, mlp.parameters(), strict=True))


@pytest.mark.parametrize("scheme", ["fixup", "zero_residual"])
def test_config_file_lists_every_parameter_and_instantiates(scheme):
    cfg = OmegaConf.load(CONF / f"{scheme}.yaml")
    params = {k: v for k, v in OmegaConf.to_container(cfg).items()
              if k not in ("_target_", "scheme")}
    assert params == SCHEMES[scheme].defaults
    init = instantiate(cfg)
    model = resnet(8, norm="none" if scheme == "fixup" else "batch")
    report = init(model, activation=nn.ReLU(), seed=0)
    assert len(report.rows) == sum(1 for _ in model.parameters())


def test_fixup_same_seed_same_weights():
    a, b = resnet(8), resnet(8)
    initialize(a, "fixup", activation="relu", seed=5)
    initialize(b, "fixup", activation="relu", seed=5)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.slow
def test_pipeline_records_the_refusal_as_a_failed_run(run_train, tmp_path):
    proc = run_train(["init=fixup", "trainer.max_epochs=1", "logger=none", "diagnostics=off",
                      f"paths.output_root={tmp_path}"])
    assert proc.returncode != 0
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert summary["status"] == "failed"
    assert "init=fixup needs a model with residual branches" in summary["error"]
    assert "got MLP" in summary["error"]


@pytest.mark.parametrize("scheme", ["fixup", "zero_residual"])
def test_seeds_and_global_rng_on_a_resnet(scheme):
    """What tests/initializers/test_init_api.py checks for every scheme, on a residual model
    (these two refuse its plain MLP)."""
    m = resnet(8, norm="batch")
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    initialize(m, scheme, activation="relu", seed=7)
    first = [p.detach().clone() for p in m.parameters()]
    initialize(m, scheme, activation="relu", seed=7)
    assert all(torch.equal(a, b) for a, b in zip(first, m.parameters(), strict=True))
    initialize(m, scheme, activation="relu", seed=8)
    assert not all(torch.equal(a, b) for a, b in zip(first, m.parameters(), strict=True))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("scheme,params", [
    ("he", {"bias": "constant", "bias_value": 0.1}),
    ("random", {"bias": "scheme"}),
    ("xavier", {}),
    ("fixup", {}),
])
def test_every_scheme_leaves_fixups_scalars_where_they_change_nothing(scheme, params):
    # bias1a/1b/2a/2b and scale are the block's reparametrization, not layer biases:
    # 0 and 1 under every scheme (they once took init.bias's constant or random draws)
    model = resnet(8)
    with torch.no_grad():
        for block in model.stages.modules():
            for name, value in getattr(block, "NEUTRAL_PARAMS", {}).items():
                getattr(block, name).fill_(value + 0.5)  # away from neutral first
    report = initialize(model, scheme, seed=0, **params)
    blocks = [b for b in model.modules() if hasattr(b, "NEUTRAL_PARAMS")]
    assert len(blocks) == 3
    for block in blocks:
        for name, value in block.NEUTRAL_PARAMS.items():
            assert getattr(block, name).item() == value, name
    rows = [r for r in report if r["param"] in ("bias1a", "scale")]
    assert rows and all(r["rule"] in ("neutral", "fixup_zeros", "fixup_ones")
                        for r in rows), rows
    if params.get("bias") == "constant":  # the head's bias still follows init.bias
        assert torch.all(model.head.bias == 0.1)

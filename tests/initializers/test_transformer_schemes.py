"""Transformer init schemes: drawn per-layer statistics against each paper's formula (KS
tests, as for the classic schemes), the roles each scheme touches, and refusals."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import nn

from initlab.initializers import initialize
from initlab.initializers.transformer import (
    deepnet_beta,
    gpt2_residual_std,
    small_init_std,
    tfixup_factor,
)
from initlab.models.transformer import Transformer

WIDTH, DEPTH = 64, 3
POWER_N = 10_000  # samples from which the KS test tells a 15% wider law apart


def model(**kw) -> Transformer:
    args = dict(input_shape=(8,), num_outputs=10, activation=nn.GELU, depth=DEPTH, width=WIDTH,
                heads=4, vocab_size=200)
    args.update(kw)
    return Transformer(**args)


def values(modules) -> torch.Tensor:
    return torch.cat([m.weight.detach().flatten() for m in modules]).double().numpy()


def normal_ok(modules, std: float) -> None:
    """KS: the weights are N(0, std^2), and not N(0, 1.3 std^2) (the test has power)."""
    v = values(modules)
    assert stats.kstest(v, stats.norm(scale=std).cdf).pvalue > 1e-4
    if len(v) >= POWER_N:
        assert stats.kstest(v, stats.norm(scale=std * math.sqrt(1.3)).cdf).pvalue < 1e-6


def uniform_ok(modules, bound: float) -> None:
    v = values(modules)
    assert stats.kstest(v, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-4
    if len(v) >= POWER_N:
        assert stats.kstest(v, stats.uniform(-1.15 * bound, 2.3 * bound).cdf).pvalue < 1e-6


def xavier_std(m: nn.Linear) -> float:
    fan_out, fan_in = m.weight.shape
    return math.sqrt(2.0 / (fan_in + fan_out))


def test_formulas() -> None:
    assert gpt2_residual_std(0.02, 6) == pytest.approx(0.02 / math.sqrt(12))
    assert small_init_std(512) == pytest.approx(math.sqrt(2 / (512 + 4 * 512)))
    assert tfixup_factor(6, "decoder") == pytest.approx((9 * 6) ** -0.25)
    assert tfixup_factor(6, "encoder") == pytest.approx(0.67 * 6 ** -0.25)
    assert deepnet_beta(6) == pytest.approx((8 * 6) ** -0.25)


def test_gpt2_normal_002_and_scaled_residual_projections() -> None:
    net = model()
    report = initialize(net, "gpt2", seed=0)
    r = net.layer_roles()
    normal_ok(r["attn_qk"] + r["attn_v"] + r["mlp_in"] + r["embedding"], 0.02)
    normal_ok(r["attn_out"] + r["mlp_out"], 0.02 / math.sqrt(2 * DEPTH))
    assert report.find("blocks.0.attn.out")["std"] == pytest.approx(0.02 / math.sqrt(6))
    assert all(float(b.attn.q.bias.detach().abs().max()) == 0 for b in net.blocks)
    assert float(net.blocks[0].norm1.weight.detach().min()) == 1.0
    initialize(net, "gpt2", seed=0, residual_scale=False)
    normal_ok(r["attn_out"] + r["mlp_out"], 0.02)


def test_small_init_and_small_embeddings() -> None:
    net = model()
    initialize(net, "small_init", seed=1)
    r = net.layer_roles()
    normal_ok([m for ms in r.values() for m in ms], math.sqrt(2 / (5 * WIDTH)))
    initialize(net, "small_init", seed=1, embedding_std=1e-3)
    normal_ok(r["embedding"], 1e-3)
    normal_ok(r["attn_qk"] + r["mlp_in"], math.sqrt(2 / (5 * WIDTH)))


@pytest.mark.parametrize("kind, variant", [("gpt", "decoder"), ("vit", "encoder")])
def test_tfixup_xavier_scaled_branches_and_embeddings(kind: str, variant: str) -> None:
    net = model(norm="none") if kind == "gpt" else Transformer(
        (1, 8, 8), 10, nn.GELU, depth=DEPTH, width=WIDTH, heads=4, norm="none")
    initialize(net, "tfixup", seed=2)
    r = net.layer_roles()
    f = tfixup_factor(DEPTH, variant)
    # plain Xavier uniform; pooled where the fans agree (q, k, v, out: d x d; fc_in, fc_out)
    uniform_ok(r["attn_qk"], math.sqrt(3) * xavier_std(r["attn_qk"][0]))
    uniform_ok(r["head"], math.sqrt(3) * xavier_std(net.head))
    uniform_ok(r["attn_v"] + r["attn_out"], math.sqrt(3) * xavier_std(r["attn_v"][0]) * f)
    uniform_ok(r["mlp_in"] + r["mlp_out"], math.sqrt(3) * xavier_std(r["mlp_in"][0]) * f)
    normal_ok([net.pos_emb], WIDTH ** -0.5 * f)
    if kind == "gpt":
        normal_ok([net.tok_emb], WIDTH ** -0.5 * f)
    else:  # the patch embedding is a Linear: Xavier, scaled like the embeddings
        uniform_ok([net.patch_emb], math.sqrt(3) * xavier_std(net.patch_emb) * f)


def test_deepnet_beta_on_v_out_ffn_and_refuses_without_deepnorm() -> None:
    net = model(norm_position="post", residual_alpha="deepnorm")
    report = initialize(net, "deepnet", seed=3)
    r = net.layer_roles()
    beta = (8 * DEPTH) ** -0.25
    normal_ok(r["attn_qk"], xavier_std(r["attn_qk"][0]))
    normal_ok(r["attn_v"] + r["attn_out"], xavier_std(r["attn_v"][0]) * beta)
    normal_ok(r["mlp_in"] + r["mlp_out"], xavier_std(r["mlp_in"][0]) * beta)
    assert report.find("blocks.1.mlp.fc_in")["std"] == pytest.approx(
        xavier_std(net.blocks[1].mlp.fc_in) * beta)
    with pytest.raises(ValueError, match="model.norm_position=post model.residual_alpha=deepnorm"):
        initialize(model(), "deepnet", seed=0)


def test_rezero_gates_zero_or_branch_outputs_zero_so_blocks_are_identities() -> None:
    x = torch.randn(2, 8, WIDTH)
    gated = model(residual_gate=True)
    initialize(gated, "rezero", seed=4)
    for b in gated.blocks:
        assert float(b.gate1) == 0.0 and float(b.gate2) == 0.0
        torch.testing.assert_close(b(x), x)
        uniform_ok([b.attn.out], math.sqrt(3) * xavier_std(b.attn.out))  # base: xavier
    plain = model()
    report = initialize(plain, "rezero", seed=4, base="he")
    for b in plain.blocks:
        assert not b.attn.out.weight.any() and not b.mlp.fc_out.bias.any()
        torch.testing.assert_close(b(x), x)
    assert report.find("blocks.0.attn.q")["rule"] == "he_normal"
    normal_ok(plain.layer_roles()["attn_qk"], math.sqrt(2 / WIDTH))


def test_per_role_applies_each_scheme_to_its_role() -> None:
    net = model()
    report = initialize(net, "per_role", seed=5, default="lecun", attn_qk="orthogonal",
                        head="zeros", embedding="random")
    r = net.layer_roles()
    for m in r["attn_qk"]:  # orthogonal: W W^T = I
        torch.testing.assert_close(m.weight @ m.weight.T, torch.eye(WIDTH), atol=1e-5, rtol=0)
    assert not net.head.weight.any()
    normal_ok(r["embedding"], 0.01)
    assert report.find("pos_emb")["std"] == 0.01
    for m in r["attn_v"] + r["mlp_in"]:  # the default, lecun: std 1/sqrt(fan_in)
        normal_ok([m], 1 / math.sqrt(m.weight.shape[1]))
    assert report.find("blocks.0.attn.k")["rule"] == "attn_qk:orthogonal"


def test_bad_params_name_the_key() -> None:
    with pytest.raises(ValueError, match="init.attn_qk='nope'"):
        initialize(model(), "per_role", attn_qk="nope")
    with pytest.raises(ValueError, match="init.variant"):
        initialize(model(), "tfixup", variant="both")
    with pytest.raises(ValueError, match="init=gpt2 needs a transformer"):
        initialize(nn.Linear(3, 3), "gpt2")

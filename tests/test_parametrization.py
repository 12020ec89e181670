"""Width parametrizations sp / ntk / mup: layer classes, lr multipliers (TP5 table 3),
the init step, and the module's optimizer groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab.initializers import Initializer
from initlab.models.mlp import MLP
from initlab.models.transformer import Transformer
from initlab.parametrization import (
    Parametrization,
    layer_classes,
    param_groups,
    param_groups_factory,
    parametrize,
    rescale_init,
)


def mlp(width: int) -> MLP:
    return MLP((12,), 3, nn.Tanh, depth=3, width=width)


def gpt(width: int) -> Transformer:
    return Transformer((5,), 3, nn.GELU, depth=1, width=width, heads=4, vocab_size=7)


def lrs(model: nn.Module, param: Parametrization, optimizer: str) -> dict[str, float]:
    """Parameter name -> its group's lr (base lr 1)."""
    groups = param_groups(model, param, 1.0, optimizer)
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    return {n: by_id[id(p)] for n, p in model.named_parameters()}


def test_layer_classes_mlp_and_transformer() -> None:
    c = layer_classes(mlp(8))
    assert c["blocks.0.linear.weight"] == "input" and c["blocks.1.linear.weight"] == "hidden"
    assert c["head.weight"] == "output" and c["head.bias"] == "output_bias"
    assert c["blocks.1.linear.bias"] == "vector"
    c = layer_classes(gpt(8))
    assert c["tok_emb.weight"] == c["pos_emb.weight"] == "input"
    assert c["blocks.0.attn.q.weight"] == c["blocks.0.mlp.fc_out.weight"] == "hidden"
    assert c["blocks.0.norm1.weight"] == "vector" and c["head.weight"] == "output"
    with pytest.raises(ValueError, match="param needs a model"):
        layer_classes(nn.Linear(2, 2))


@pytest.mark.parametrize("optimizer, expected", [
    # m = 4: (input, hidden, output, hidden bias, output bias)
    ("adam", {"mup": (1, 1 / 4, 1 / 4, 1, 1), "ntk": (1, 1 / 2, 1 / 2, 1, 1), "sp": (1,) * 5}),
    ("sgd", {"mup": (4, 1, 1 / 4, 4, 1), "ntk": (1, 1 / 4, 1 / 4, 1, 1), "sp": (1,) * 5}),
])
def test_lr_multipliers_follow_table_3(optimizer: str, expected) -> None:
    model = mlp(256)
    for kind, mults in expected.items():
        lr = lrs(model, Parametrization(kind, 64), optimizer)
        got = (lr["blocks.0.linear.weight"], lr["blocks.1.linear.weight"], lr["head.weight"],
               lr["blocks.1.linear.bias"], lr["head.bias"])
        assert got == pytest.approx(mults), kind
        # at the base width every parametrization is SP: one lr
        assert set(lrs(mlp(64), Parametrization(kind, 64), optimizer).values()) == {1.0}


def test_mup_init_step_scales_the_readout_and_the_attention() -> None:
    init = Initializer("lecun")
    sp, mu = gpt(64), gpt(64)
    init(sp, seed=0)
    report = parametrize(init, {"kind": "mup", "base_width": 16})(mu, seed=0)
    m = 64 / 16
    torch.testing.assert_close(mu.head.weight, sp.head.weight / math.sqrt(m))
    torch.testing.assert_close(mu.blocks[0].attn.q.weight, sp.blocks[0].attn.q.weight)
    row = report.find("head")
    assert row["std"] == pytest.approx(1 / math.sqrt(64) / math.sqrt(m))
    # attention: sqrt(d0) / d (d_head 16, base 4): 1/d scaling, SP's at the base width
    assert mu.blocks[0].attn.scale == pytest.approx(math.sqrt(4) / 16)
    assert sp.blocks[0].attn.scale == pytest.approx(1 / math.sqrt(16))
    zero = gpt(64)
    init(zero, seed=0)
    rescale_init(zero, Parametrization("mup", 16, "zero"))
    assert not zero.head.weight.any()
    assert parametrize(init, {"kind": "sp", "base_width": 16}) is init


def test_bad_parametrization_names_the_key() -> None:
    with pytest.raises(ValueError, match="param.kind='abc'.*sp, ntk, mup"):
        Parametrization("abc")
    with pytest.raises(ValueError, match="param.base_width"):
        Parametrization("mup", 0)
    with pytest.raises(ValueError, match="param.output_init"):
        Parametrization("mup", 8, "small")


def test_module_builds_the_optimizer_from_the_groups() -> None:
    from functools import partial

    from initlab.module import InitStudyModule

    model = mlp(128)
    factory = param_groups_factory(Parametrization("mup", 32), 0.01, "torch.optim.Adam")
    module = InitStudyModule(model, None, partial(torch.optim.Adam, lr=0.01),
                             task="classification", num_outputs=3, param_groups=factory)
    opt = module.configure_optimizers()
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lr_of[id(model.blocks[1].linear.weight)] == pytest.approx(0.01 / 4)
    assert lr_of[id(model.blocks[0].linear.weight)] == pytest.approx(0.01)
    assert param_groups_factory(Parametrization("sp", 32), 0.01, "torch.optim.Adam") is None

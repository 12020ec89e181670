"""initialize / Initializer: seeds, the global RNG, activations, the Hydra target object."""

import pytest
import torch
from torch import nn

from initlab.initializers import (
    SCHEMES,
    InitContext,
    Initializer,
    apply_rule,
    initialize,
    register_scheme,
)
from initlab.initializers.rules import ConstantRule

from .conftest import TRANSFORMER_ONLY

DETERMINISTIC = {"zeros", "constant", "identity"}
RESIDUAL_ONLY = {"fixup", "zero_residual"}  # need a model with residual branches


def model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(3, 6, 3, padding=1),
        nn.BatchNorm1d(6),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(6 * 8, 16),
        nn.Tanh(),
        nn.Linear(16, 4),
    )


def weights(m: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.parameters()]




@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_seeds_and_global_rng(scheme):
    data = torch.randn(32, 3, 8, generator=torch.Generator().manual_seed(0))
    m = model()
    if scheme in RESIDUAL_ONLY:
        from initlab.models.resnet import ResNet

        data = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        m = ResNet((1, 8, 8), 4, nn.ReLU, depth=8)
    if scheme in TRANSFORMER_ONLY:  # they need the layer roles of initlab's transformer
        from initlab.models.transformer import Transformer

        post = dict(norm_position="post", residual_alpha="deepnorm") if scheme == "deepnet" else {}
        m = Transformer((5,), 3, nn.GELU, depth=2, width=8, heads=2, vocab_size=6, **post)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    initialize(m, scheme, activation="relu", seed=7, data=data)
    assert torch.equal(state, torch.get_rng_state())
    first = weights(m)
    initialize(m, scheme, activation="relu", seed=7, data=data)
    assert all(torch.equal(a, b) for a, b in zip(first, weights(m), strict=True))
    initialize(m, scheme, activation="relu", seed=8, data=data)
    same = all(torch.equal(a, b) for a, b in zip(first, weights(m), strict=True))
    assert same == (scheme in DETERMINISTIC)
    assert torch.equal(state, torch.get_rng_state())


def test_seed_none_is_recorded_and_reproducible():
    m = model()
    report = initialize(m, "he")
    assert isinstance(report.seed, int)
    first = weights(m)
    initialize(m, "he", seed=report.seed)
    assert all(torch.equal(a, b) for a, b in zip(first, weights(m), strict=True))


def test_activation_forms_agree():
    rows = [
        initialize(nn.Linear(4, 4), "xavier", activation=a, gain="auto", seed=0).find("Linear")
        for a in ("leaky_relu", nn.LeakyReLU(), nn.LeakyReLU, {"name": "leaky_relu"})
    ]
    assert len({row["gain"] for row in rows}) == 1
    slope = initialize(nn.Linear(4, 4), "xavier", activation=nn.LeakyReLU(0.2), gain="auto")
    assert slope.find("Linear")["gain"] == pytest.approx((2 / 1.04) ** 0.5)


def test_initializer_object():
    init = Initializer("he", mode="fan_out")
    assert init.scheme == "he" and init.params["mode"] == "fan_out"
    assert init.params["distribution"] == "normal" and init.params["bias"] == "zeros"
    assert not init.needs_data
    assert init.describe() == "he(gain=auto, distribution=normal, mode=fan_out)"
    layer = nn.Linear(10, 30)
    report = init(nn.Sequential(layer), activation=nn.ReLU(), seed=3)
    assert report.find("0")["fan_out"] == 30 and report.params == init.params
    assert "bias=constant" in Initializer("xavier", bias="constant").describe()


def test_register_scheme_plugs_in_without_touching_dispatch():
    @register_scheme("test_half", defaults={"value": 0.5})
    def half(model: nn.Module, ctx: InitContext) -> None:
        """Every weight 0.5 (test only)."""
        apply_rule(model, ctx, ConstantRule(ctx.params["value"]))

    try:
        layer = nn.Linear(3, 3)
        Initializer("test_half")(layer, seed=0)
        assert torch.all(layer.weight == 0.5)
        assert SCHEMES["test_half"].defaults["bias"] == "zeros"
        with pytest.raises(ValueError, match="already registered"):
            register_scheme("test_half")(lambda m, c: None)
    finally:
        SCHEMES.pop("test_half")

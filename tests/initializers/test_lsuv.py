"""LSUV (Mishkin & Matas 2015) brings every Linear/Conv output variance within tol of 1."""

import pytest
import torch
from torch import nn

from initlab.initializers import Initializer, initialize


def _output_variances(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    variances: dict[str, float] = {}

    def record(name: str):
        def hook(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
            variances.setdefault(name, out.var().item())

        return hook

    hooks = [
        module.register_forward_hook(record(name))
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | nn.Conv2d)
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return variances


def tanh_mlp() -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(20, 64), nn.Tanh()]
    for _ in range(8):
        layers += [nn.Linear(64, 64), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(64, 10))


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )


@pytest.mark.parametrize(
    ("build", "shape", "layers"),
    [(tanh_mlp, (256, 20), 10), (small_cnn, (64, 3, 16, 16), 3)],
    ids=["tanh_mlp_10", "cnn"],
)
def test_lsuv_unit_output_variance(build, shape, layers):
    model = build()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 3.0
    report = initialize(model, "lsuv", seed=0, data=x, tol=0.1)
    assert model.training  # mode restored
    model.eval()
    variances = _output_variances(model, x)
    assert len(variances) == layers
    rows = [row for row in report if row["rule"] == "lsuv"]
    assert [row["layer"] for row in rows] == list(variances)
    for row in rows:
        assert abs(variances[row["layer"]] - 1.0) < 0.1
        assert row["final_var"] == pytest.approx(variances[row["layer"]], rel=1e-4)
        assert 0 <= row["iterations"] <= 10
    assert any(row["iterations"] > 0 for row in rows)


def test_lsuv_accepts_an_xy_batch_and_respects_max_iter():
    model = tanh_mlp()
    x = torch.randn(128, 20, generator=torch.Generator().manual_seed(1)) * 5
    report = Initializer("lsuv", max_iter=0)(model, data=(x, torch.zeros(128)), seed=0)
    assert all(row["iterations"] == 0 for row in report if row["rule"] == "lsuv")


def test_lsuv_without_data_is_a_clear_error():
    with pytest.raises(ValueError, match=r"lsuv needs a data batch: pass data="):
        initialize(tanh_mlp(), "lsuv", seed=0)
    assert Initializer("lsuv").needs_data and not Initializer("he").needs_data

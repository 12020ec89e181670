"""Every conf/init/*.yaml instantiates to an Initializer and initializes a small MLP."""

import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from initlab.initializers import SCHEMES, Initializer

from .conftest import TRANSFORMER_ONLY

CONF = Path(__file__).resolve().parents[2] / "conf" / "init"
REQUIRED = """random zeros constant default xavier he lecun variance_scaling orthogonal
delta_orthogonal identity sparse lsuv""".split()
# custom.yaml is the template for a user scheme (tests/test_extensions.py)
BUILTIN = [path.stem for path in sorted(CONF.glob("*.yaml")) if path.stem != "custom"]


def test_required_configs_exist():
    assert set(REQUIRED) <= set(BUILTIN)


@pytest.mark.parametrize("name", BUILTIN)
def test_config_instantiates_and_runs(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg._target_ == "initlab.initializers.Initializer" and cfg.scheme == name
    # Every parameter, with its default, is in the file so that it can be swept.
    params = {
        k: v for k, v in OmegaConf.to_container(cfg).items() if k not in ("_target_", "scheme")
    }
    assert params == SCHEMES[name].defaults
    init = instantiate(cfg)
    assert isinstance(init, Initializer)
    if name in ("fixup", "zero_residual"):  # residual-only: a ResNet instead of the MLP
        from initlab.models.resnet import ResNet

        net = ResNet((1, 8, 8), 3, nn.ReLU, depth=8)
        report = init(net, activation=nn.ReLU(), seed=0)
        json.dumps(report.to_records())
        reported = {f"{r['layer']}.{r['param']}" for r in report.rows}
        assert reported == {n for n, _ in net.named_parameters()}  # every tensor reported
        return
    if name in TRANSFORMER_ONLY:  # need layer roles: a small transformer
        from initlab.models.transformer import Transformer

        post = dict(norm_position="post", residual_alpha="deepnorm") if name == "deepnet" else {}
        net = Transformer((5,), 3, nn.GELU, depth=2, width=8, heads=2, vocab_size=6, **post)
        report = init(net, activation=nn.GELU(), seed=0)
        json.dumps(report.to_records())
        assert {f"{r['layer']}.{r['param']}" for r in report.rows} == {
            n for n, _ in net.named_parameters()}
        return
    mlp = nn.Sequential(
        nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3)
    )
    data = (
        torch.randn(64, 12, generator=torch.Generator().manual_seed(0)) if init.needs_data else None
    )
    report = init(mlp, activation=nn.ReLU(), data=data, seed=0)
    json.dumps(report.to_records())
    assert len(report.rows) == 6


def test_sweep_override_reaches_the_initializer():
    cfg = OmegaConf.merge(
        OmegaConf.load(CONF / "he.yaml"),
        OmegaConf.from_dotlist(["distribution=uniform", "mode=fan_out", "gain=1.5"]),
    )
    init = instantiate(cfg)
    assert (init.params["distribution"], init.params["mode"], init.params["gain"]) == (
        "uniform",
        "fan_out",
        1.5,
    )

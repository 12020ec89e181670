"""Each conf/model/<name>.yaml of issue 6 builds its model the way the pipeline does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from initlab.models.activations import activation_factory

CONF = Path(__file__).resolve().parents[2] / "conf" / "model"


@pytest.mark.parametrize(
    "name, input_shape, cls_name",
    [
        ("resnet", (3, 32, 32), "ResNet"),
        ("resnet", (1, 8, 8), "ResNet"),
        ("rnn", (50, 2), "RNNModel"),
        ("lstm", (50, 2), "RNNModel"),
        ("gru", (1, 8, 8), "RNNModel"),
    ],
)
def test_config_builds(name: str, input_shape, cls_name: str) -> None:
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    model = instantiate(
        cfg, input_shape=input_shape, num_outputs=10, activation=activation_factory("tanh")
    )
    assert type(model).__name__ == cls_name
    if name != "resnet":
        assert model.cell == name


def test_resnet_default_is_small() -> None:
    cfg = OmegaConf.load(CONF / "resnet.yaml")
    assert (cfg.depth, cfg.width, cfg.norm) == (8, 16, "batch")

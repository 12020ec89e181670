"""conf/diagnostics/*.yaml: the keys the pipeline reads, and the callback instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from initlab.diagnostics.callbacks import TrainingDiagnostics

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.parametrize("name", ["default", "off", "full"])
def test_diagnostics_configs(name):
    cfg = OmegaConf.load(CONF / "diagnostics" / f"{name}.yaml")
    assert isinstance(cfg.probe, bool) and isinstance(cfg.jacobian, bool)
    assert cfg.probe_batch_size > 0 and cfg.jacobian_examples > 0
    if name == "off":
        assert cfg.callback is None and not cfg.probe
        return
    cb = instantiate(cfg.callback)
    assert isinstance(cb, TrainingDiagnostics)
    assert cb.histograms == (name == "full") and cfg.jacobian == (name == "full")
    assert cb.explode_bound == 1e3 and cb.vanish_bound == 1e-7


def test_group_selectable_from_main_config():
    if not (CONF / "config.yaml").exists():
        pytest.skip("no main config")
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose("config", overrides=["diagnostics=off"])
    assert cfg.diagnostics.callback is None
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose("config", overrides=["diagnostics=full", "diagnostics.callback.patience=2"])
    assert cfg.diagnostics.callback.patience == 2 and cfg.diagnostics.jacobian

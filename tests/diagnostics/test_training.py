"""diagnostics/training.py: the Lightning-free settings and helpers of the training-time
diagnostics, read from the config without instantiating the Lightning callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from initlab.diagnostics.callbacks import TrainingDiagnostics
from initlab.diagnostics.training import (
    CALLBACK_TARGET,
    SETTINGS_KEYS,
    DiagnosticsSettings,
    settings_from_config,
)

from ..conftest import ROOT

LIGHTNING = ("pytorch_lightning", "lightning_fabric", "lightning")


def test_engine_diagnostics_and_config_reading_import_no_lightning() -> None:
    # a fresh interpreter: this one has Lightning loaded already
    code = (
        "import json, sys\n"
        "from omegaconf import OmegaConf\n"
        "import initlab.diagnostics.training as t, initlab.vectorized.diagnostics\n"
        f"node = OmegaConf.load({str(ROOT / 'conf/diagnostics/default.yaml')!r}).callback\n"
        "s = t.settings_from_config(node)\n"
        "print(json.dumps({'type': type(s).__name__, 'every': s.log_every_n_steps,\n"
        f"    'loaded': [m for m in {LIGHTNING!r} if m in sys.modules]}}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"type": "DiagnosticsSettings", "every": 50, "loaded": []}


def attributes(obj: DiagnosticsSettings) -> dict:
    return {k: getattr(obj, k) for k in SETTINGS_KEYS}


@pytest.mark.parametrize("group", ["default", "full"])
def test_settings_from_config_match_the_instantiated_callback(compose_cfg, group) -> None:
    node = compose_cfg(f"diagnostics={group}").diagnostics.callback
    settings = settings_from_config(node)
    callback = instantiate(node)
    assert type(settings) is DiagnosticsSettings and isinstance(callback, TrainingDiagnostics)
    assert attributes(settings) == attributes(callback)
    # read from the file, not the defaults: these differ from the constructor's
    assert settings.histograms == (group == "full")
    assert settings.log_every_n_steps == (50 if group == "default" else None)


def test_settings_from_config_reads_overrides_and_the_same_step_rules(compose_cfg) -> None:
    node = compose_cfg("diagnostics=default", "diagnostics.callback.patience=2",
                       "diagnostics.callback.check_every_n_steps=3",
                       "diagnostics.callback.explode_bound=null").diagnostics.callback
    settings, callback = settings_from_config(node), instantiate(node)
    assert (settings.patience, settings.check_every_n_steps, settings.explode_bound) == (
        2, 3, None)
    assert attributes(settings) == attributes(callback)
    for step in range(120):  # the moved schedule methods answer as the callback's
        assert settings.is_log_step(step, 50) == callback.is_log_step(step, 50)
        assert settings.is_check_step(step, 50) == callback.is_check_step(step, 50)
        assert settings.next_event(step, 50) == callback.next_event(step, 50)
    # dense start (50: steps 0, 1, 2, 4, ..., 32, 50, 100) and checks every 3 steps
    assert [s for s in range(120) if settings.is_log_step(s, 50)] == [
        0, 1, 2, 4, 8, 16, 32, 50, 100]
    assert [s for s in range(10) if settings.is_check_step(s, 50)] == [0, 3, 6, 9]
    assert settings.next_event(32, 50) == 33 and settings.next_event(33, 50) == 36


def test_settings_defaults_are_the_callbacks() -> None:
    assert attributes(DiagnosticsSettings()) == attributes(TrainingDiagnostics())
    assert isinstance(TrainingDiagnostics(patience=3), DiagnosticsSettings)
    assert TrainingDiagnostics(patience=3)._episodes.patience == 3  # run state still set


def test_unknown_key_is_named() -> None:
    node = OmegaConf.create({"_target_": CALLBACK_TARGET, "patience": 2, "paitence": 3})
    with pytest.raises(TypeError, match="'paitence'.*allowed: log_every_n_steps"):
        settings_from_config(node)


def test_other_nodes_are_left_to_the_caller() -> None:
    assert settings_from_config(None) is None
    assert settings_from_config(OmegaConf.create({"_target_": "my.pkg.MyDiagnostics",
                                                  "foo": 1})) is None
    # a partial is not a settings object: the caller instantiates it as before
    assert settings_from_config(OmegaConf.create({"_target_": CALLBACK_TARGET,
                                                  "_partial_": True})) is None
    # Hydra's harmless keys and interpolations are fine
    node = OmegaConf.create({"every": 7, "cb": {"_target_": CALLBACK_TARGET,
                                                 "_recursive_": False,
                                                 "log_every_n_steps": "${every}"}}).cb
    assert settings_from_config(node).log_every_n_steps == 7

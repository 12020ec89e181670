"""The version-gated workarounds in initlab/compat.py still fit the installed libraries:
these tests fail loudly when an internal they rely on moves."""

from __future__ import annotations

import inspect

import hydra
import pytorch_lightning as pl
from omegaconf import OmegaConf

from initlab import compat


def test_lightning_still_has_the_hydra_child_command_hook() -> None:
    from pytorch_lightning.strategies.launchers import subprocess_script as launcher

    assert hasattr(launcher, "_hydra_subprocess_cmd"), "Lightning moved _hydra_subprocess_cmd"
    params = list(inspect.signature(launcher._hydra_subprocess_cmd).parameters)
    assert params == ["local_rank"]
    # the launcher still calls the module-level name (so replacing it takes effect)
    src = inspect.getsource(launcher._SubprocessScriptLauncher)
    assert "_hydra_subprocess_cmd(" in src


def test_patch_installs_initlabs_command() -> None:
    from pytorch_lightning.strategies.launchers import subprocess_script as launcher

    from initlab.distributed import job_subprocess_cmd

    assert compat.patch_ddp_for_hydra(required=True)
    assert launcher._hydra_subprocess_cmd is job_subprocess_cmd


def test_installed_versions_are_in_the_tested_ranges() -> None:
    assert compat.in_range(pl.__version__, compat.LIGHTNING_RANGE), pl.__version__
    assert compat.in_range(hydra.__version__, compat.HYDRA_RANGE), hydra.__version__
    assert not compat.in_range("3.0.1", compat.LIGHTNING_RANGE)
    assert compat.in_range("2.6.0rc1", compat.LIGHTNING_RANGE)


def test_hydras_override_dirname_is_still_reachable() -> None:
    node = OmegaConf.create({"job": {"config": {"override_dirname": {
        "exclude_keys": ["seed"], "item_sep": ",", "kv_sep": "="}}}})
    name = compat.overrides_dirname(["init=he", "seed=3", "model.depth=4"], node)
    assert name == "init=he,model.depth=4"

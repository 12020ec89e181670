"""Extension points: a user's model and init scheme through train.py, InitCallback in a
plain Trainer, and no private library seams outside initlab/compat.py."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab.data.digits import DigitsDataModule

from .conftest import ROOT, train_subprocess

TESTS = Path(__file__).resolve().parent


def _train_with_userpkg(args: list[str], tmp_path: Path) -> dict:
    old = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), old])
    try:
        proc = train_subprocess([*args, "trainer.max_epochs=1", "logger=none",
                                 f"hydra.run.dir={tmp_path}"])
    finally:
        os.environ["PYTHONPATH"] = old
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "summary.json").read_text())


def test_user_model_with_initlabs_arguments_trains(tmp_path: Path) -> None:
    summary = _train_with_userpkg(["model=custom", "model._target_=userpkg.nets.TwoLayer",
                                   "+model.hidden=8", "init=he"], tmp_path)
    assert summary["status"] == "completed"
    assert summary["n_params"] == 64 * 8 + 8 + 8 * 10 + 10  # hidden=8 reached the model
    assert summary["final_val_acc"] > 0.2  # chance is 0.1


def test_user_model_factory_without_arguments_trains(tmp_path: Path) -> None:
    summary = _train_with_userpkg(["model=custom", "model._target_=userpkg.nets.fixed_digits_net"],
                                  tmp_path)
    assert summary["status"] == "completed"
    assert summary["n_params"] == 64 * 12 + 12 + 12 * 10 + 10


def test_inherited_model_keys_are_named(tmp_path: Path) -> None:
    proc = train_subprocess(["model._target_=torch.nn.Flatten", "trainer.max_epochs=1",
                             "logger=none", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "model.depth is not an argument of torch.nn.Flatten" in summary["error"]
    assert "model=custom" in summary["error"]


def test_user_scheme_registers_through_init_imports(tmp_path: Path) -> None:
    summary = _train_with_userpkg(
        ["model=custom", "model._target_=userpkg.nets.TwoLayer", "+model.hidden=32",
         "init=custom", "init.scheme=user_constant_std", "init.imports=[userpkg.schemes]",
         "+init.std=0.03"], tmp_path)
    assert summary["status"] == "completed", summary.get("error")
    first = summary["init_diagnostics"][0]
    # the probe saw the user's N(0, 0.03^2) weights: ||W||_F ~ 0.03 sqrt(64 * 32)
    assert first["weight_norm"] == pytest.approx(0.03 * (64 * 32) ** 0.5, rel=0.1)


def test_unknown_scheme_module_is_named(tmp_path: Path) -> None:
    proc = train_subprocess(["init=custom", "init.scheme=x", "init.imports=[no_such_pkg.mod]",
                             "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "init.imports: cannot import 'no_such_pkg.mod'" in summary["error"]


class UserModule(pl.LightningModule):
    """A user's own LightningModule, nothing initlab about it."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_init_callback_initializes_a_user_module_in_a_plain_trainer() -> None:
    module = UserModule()
    seen = {}

    class Snapshot(pl.Callback):
        def on_train_start(self, trainer, pl_module):  # noqa: ANN001
            seen["w"] = pl_module.model[1].weight.detach().clone()

    init = initlab.InitCallback("orthogonal", gain=1.0, seed=3, probe=True, probe_batch_size=64)
    trainer = pl.Trainer(max_steps=2, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, callbacks=[init, Snapshot()])
    trainer.fit(module, datamodule=DigitsDataModule(seed=0))
    w = seen["w"]  # (32, 64): orthonormal rows
    torch.testing.assert_close(w @ w.T, torch.eye(32), atol=1e-5, rtol=0)
    assert [r["layer"] for r in init.probe.records] == ["1", "3"]  # names inside .model
    assert init.report is not None and len(init.report.to_records()) >= 2


def test_init_callback_feeds_a_data_dependent_scheme() -> None:
    module = UserModule()
    init = initlab.InitCallback("lsuv", activation="relu", seed=0)
    trainer = pl.Trainer(max_steps=1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, callbacks=[init])
    dm = DigitsDataModule(seed=0)
    trainer.fit(module, datamodule=dm)
    assert init.report is not None


PRIVATE = re.compile(r"fit_loop|_get_file_writer|record_writer|__signature__|_set_sampler_epoch"
                     r"|_hydra_subprocess_cmd|hydra\._internal")


def test_no_private_library_seams_outside_compat() -> None:
    found = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "src").rglob("*.py")
             if p.name != "compat.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if PRIVATE.search(line)]
    assert found == []
    module_src = (ROOT / "src" / "initlab" / "module.py").read_text()
    assert "import torchmetrics" in module_src

"""initlab's TensorBoard logger writes what Lightning's writes, in fewer events."""

from __future__ import annotations

import os
from pathlib import Path

import crc32c
import pytest
import torch
import yaml
from pytorch_lightning.loggers import TensorBoardLogger as LightningLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as python_crc

from initlab.tensorboard import TensorBoardLogger, fast_event_checksums, masked_crc32c

LOGGED = [
    ({"train/loss": 2.5}, 0),
    ({"train/loss": torch.tensor(1.25)}, 10),
    ({"train/loss_epoch": 1.5, "train/acc": 0.5, "epoch": 0}, 19),
    ({"val/loss": 1.0, "val/acc": 0.75, "epoch": 0}, 20),
    ({"diag/dead_frac/model.0": 0.125}, 20),
]


def _scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.parametrize("buffer_secs", [0.0, 3600.0])
def test_same_scalars_as_lightning_logger(tmp_path: Path, buffer_secs: float) -> None:
    ours = TensorBoardLogger(str(tmp_path / "ours"), name="tb", version="v",
                             buffer_secs=buffer_secs)
    theirs = LightningLogger(str(tmp_path / "theirs"), name="tb", version="v")
    for metrics, step in LOGGED:
        ours.log_metrics(dict(metrics), step)
        theirs.log_metrics(dict(metrics), step)
    ours.finalize("success")
    theirs.finalize("success")
    got, want = _scalars(ours.log_dir), _scalars(theirs.log_dir)
    assert got == want
    assert got["val/acc"] == [(20, 0.75)] and len(got["epoch"]) == 2


def test_buffered_values_are_written_on_save(tmp_path: Path) -> None:
    logger = TensorBoardLogger(str(tmp_path), name="tb", version="v", buffer_secs=3600.0)
    logger.log_metrics({"a": 1.0}, 0)
    logger.log_metrics({"a": 2.0, "b": 3.0}, 1)
    assert not _scalars(logger.log_dir)  # still in memory
    logger.save()
    assert _scalars(logger.log_dir) == {"a": [(0, 1.0), (1, 2.0)], "b": [(1, 3.0)]}


def test_c_checksum_equals_tensorboards_own() -> None:
    for n in (0, 1, 7, 8, 100, 4096):
        data = os.urandom(n)
        assert masked_crc32c(crc32c.crc32c(data)) == python_crc(data)
    assert fast_event_checksums()


def test_hparams_yaml_holds_the_last_logged_hyperparameters(tmp_path: Path) -> None:
    # Lightning writes hparams.yaml once, at fit start, when nothing is logged yet ({});
    # initlab's logger rewrites it on each save that has hyperparameters
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="", version="run")
    logger.log_metrics({"a": 1.0}, step=0)
    logger.save()
    path = Path(logger.log_dir) / "hparams.yaml"
    assert yaml.safe_load(path.read_text()) == {}
    params = {"init": "he", "seed": 3, "model.width": 128, "optimizer.lr": 0.05,
              "dataset.standardize": True, "max_steps": None, "status": "completed"}
    logger.log_hyperparams(params, metrics={"hparams/best_val_acc": 0.9})
    logger.finalize("success")
    assert yaml.safe_load(path.read_text()) == params
    assert list(yaml.safe_load(path.read_text())) == list(params)  # logged order


def test_hparams_yaml_with_other_values_goes_through_lightning(tmp_path: Path) -> None:
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="", version="run")
    logger.log_hyperparams({"channels": [4, 8], "init": "he"})
    logger.save()
    text = (Path(logger.log_dir) / "hparams.yaml").read_text()
    assert yaml.safe_load(text) == {"channels": [4, 8], "init": "he"}


@pytest.mark.parametrize("status", ["failed", "diverged"])
def test_hparams_yaml_is_written_whatever_the_runs_outcome(tmp_path: Path, status: str) -> None:
    # Lightning's finalize saves only on "success": diverged and failed runs kept {}
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="", version="run")
    logger.log_hyperparams({"init": "random", "status": status})
    logger.finalize(status)
    hp = yaml.safe_load((Path(logger.log_dir) / "hparams.yaml").read_text())
    assert hp == {"init": "random", "status": status}

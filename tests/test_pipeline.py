"""One run in-process: outcomes are recorded in the run folder, never raised."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from initlab.pipeline import history_metrics, run
from initlab.resume import finished_summary, last_checkpoint

NO_LOG = ["logger=none", "diagnostics=off"]


def test_completed_run_writes_summary_and_history(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("trainer.max_epochs=2", "diagnostics=default")
    s = run(cfg, tmp_path, progress_bar=False)
    assert s["status"] == "completed", s.get("traceback")
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["status"] == "completed"
    assert stored["init"] == "he" and stored["activation"] == "relu" and stored["seed"] == 0
    assert stored["config"]["model.depth"] == 2
    for key in ("final_val_acc", "best_val_acc", "final_train_loss", "test_acc", "wall_time_s",
                "n_params"):
        assert isinstance(stored[key], (int, float)), key
    hist = pd.read_csv(tmp_path / "history.csv")
    assert list(hist["epoch"]) == [1, 2]
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(hist.columns)
    assert stored["final_val_acc"] == hist["val_acc"].iloc[-1]
    assert stored["best_val_acc"] == hist["val_acc"].max()
    # the init probe ran on the initialized network
    assert len(stored["init_diagnostics"]) == 3  # 2 hidden layers + head
    assert "init_act_std_last" in stored


def test_same_seed_same_numbers(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(*NO_LOG)
    a = run(cfg, tmp_path / "a", progress_bar=False)
    b = run(cfg, tmp_path / "b", progress_bar=False)
    assert a["final_train_loss"] == b["final_train_loss"]
    c = run(compose_cfg(*NO_LOG, "seed=1"), tmp_path / "c", progress_bar=False)
    assert c["final_train_loss"] != a["final_train_loss"]


def test_exploding_run_is_recorded_as_diverged(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(*NO_LOG, "init=random", "init.std=1e3", "optimizer.lr=10")
    s = run(cfg, tmp_path, progress_bar=False)
    assert s["status"] == "diverged"
    assert s["diverged_step"] >= 0
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"
    # it diverged in its first epoch: history.csv is an empty table with the usual header
    assert (s["diverged_epoch"], s["epochs_run"]) == (1, 0)
    history = pd.read_csv(tmp_path / "history.csv")
    assert history.empty and list(history.columns)[:3] == ["epoch", "step", "train_loss"]


def test_bad_config_is_recorded_as_failed_with_key(compose_cfg, tmp_path: Path) -> None:
    s = run(compose_cfg(*NO_LOG, "model.depth=-2"), tmp_path, progress_bar=False)
    assert s["status"] == "failed"
    assert "model.depth" in s["error"] and s["error_type"] == "ValueError"
    assert "Traceback" in s["traceback"]


def test_finished_run_is_recognised_for_resume(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(*NO_LOG)
    assert finished_summary(cfg, tmp_path) is None
    run(cfg, tmp_path, progress_bar=False)
    assert finished_summary(cfg, tmp_path)["status"] == "completed"
    assert finished_summary(compose_cfg(*NO_LOG, "seed=5"), tmp_path) is None
    (tmp_path / "summary.json").write_text('{"status": "compl')  # truncated by a kill
    assert finished_summary(cfg, tmp_path) is None


def test_a_failed_run_is_run_again_and_a_diverged_one_is_kept(compose_cfg,
                                                               tmp_path: Path) -> None:
    # a failure often has a cause outside the config (missing data, a killed node): a
    # rerun retries it; a divergence comes back with the same config and seed
    cfg = compose_cfg(*NO_LOG)
    run(cfg, tmp_path, progress_bar=False, extra_callbacks=[CrashAtEpoch(0)])
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"
    assert finished_summary(cfg, tmp_path) is None
    boom = compose_cfg(*NO_LOG, "init=random", "init.std=1e3", "optimizer.lr=10")
    run(boom, tmp_path / "boom", progress_bar=False)
    assert finished_summary(boom, tmp_path / "boom")["status"] == "diverged"


def test_checkpointed_run_continues_from_last_epoch(compose_cfg, tmp_path: Path) -> None:
    first = run(compose_cfg(*NO_LOG, "checkpoint=true", "trainer.max_epochs=2"),
                tmp_path, progress_bar=False)
    assert first["status"] == "completed" and last_checkpoint(tmp_path) is not None
    # as if it had been killed: the checkpoint stays, the summary is gone
    (tmp_path / "summary.json").unlink()
    second = run(compose_cfg(*NO_LOG, "checkpoint=true", "trainer.max_epochs=3"),
                 tmp_path, progress_bar=False)
    assert second["status"] == "completed" and "resumed_from" in second
    assert second["steps"] == 3 * first["steps"] // 2  # only the third epoch was trained
    hist = pd.read_csv(tmp_path / "history.csv")
    assert list(hist["epoch"]) == [1, 2, 3]  # restored rows + the new one
    fresh = run(compose_cfg(*NO_LOG, "trainer.max_epochs=3"), tmp_path / "fresh",
                progress_bar=False)
    assert abs(fresh["final_train_loss"] - second["final_train_loss"]) < 1e-4
    assert torch.isfinite(torch.tensor(second["final_val_loss"]))


def test_init_diagnostics_carry_meanfield_theory(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("logger=none", "activation=tanh", "init=xavier", "model.width=256",
                      "model.depth=6")
    s = run(cfg, tmp_path, progress_bar=False)
    assert s["status"] == "completed", s.get("traceback")
    # xavier on 64 -> 256 -> ... : sigma_w^2 = Var(W) * fan_in averaged over hidden layers
    assert 0.5 < s["meanfield_sigma_w2"] < 1.2 and s["meanfield_sigma_b2"] == 0.0
    # tanh with sigma_w^2 < 1 and no bias is in the ordered phase: chi_1 < 1
    assert s["meanfield_chi_1"] < 1.0
    assert "measured_chi1" in s
    hist = s["init_act_histograms"]
    assert len(hist) == 6 and all(sum(h["counts"]) == 64 * 256 for h in hist)  # probe batch x width


def test_bf16_mixed_precision_trains_on_cpu(compose_cfg, tmp_path: Path) -> None:
    # the GPU option users set (trainer.precision=bf16-mixed) runs through the same code
    # here with CPU autocast; the loss stays finite and the run learns
    s = run(compose_cfg(*NO_LOG, "trainer.precision=bf16-mixed", "trainer.max_epochs=2"),
            tmp_path, progress_bar=False)
    assert s["status"] == "completed", s.get("traceback")
    assert s["config"]["trainer.precision"] == "bf16-mixed"
    assert s["best_val_acc"] > 0.5  # 10 classes: chance is 0.1


def _rows(**cols: list) -> list[dict]:
    n = len(next(iter(cols.values())))
    return [{"epoch": i + 1, **{k: v[i] for k, v in cols.items()}} for i in range(n)]


def test_best_epoch_is_the_first_at_the_best_value() -> None:
    # classification: ties on val_acc go to the earliest epoch
    out = history_metrics(_rows(val_acc=[0.5, 0.8, 0.7, 0.8], val_loss=[1.0, 0.6, 0.5, 0.7]),
                          None, "classification")
    assert (out["best_val_acc"], out["best_epoch"], out["best_val_loss"]) == (0.8, 2, 0.5)
    # regression: no accuracy; the epoch of the lowest validation loss (NaN skipped)
    out = history_metrics(_rows(val_loss=[0.9, float("nan"), 0.4, 0.4, 0.6]), 0.5,
                          "regression")
    assert (out["best_val_loss"], out["best_epoch"], out["epochs_to_target"]) == (0.4, 3, 3)


class CrashAtEpoch(pl.Callback):
    """Fails the run at the start of epoch ``epoch`` (0-based), as a killed job would stop."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_a_run_that_crashed_mid_way_resumes_from_its_last_finished_epoch(compose_cfg,
                                                                         tmp_path: Path) -> None:
    cfg = compose_cfg(*NO_LOG, "checkpoint=true", "trainer.max_epochs=4")
    crashed = run(cfg, tmp_path, progress_bar=False, extra_callbacks=[CrashAtEpoch(2)])
    assert crashed["status"] == "failed" and "simulated crash" in crashed["error"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.ckpt"]
    resumed = run(cfg, tmp_path, progress_bar=False)
    assert resumed["status"] == "completed" and "resumed_from" in resumed
    fresh = run(cfg, tmp_path / "fresh", progress_bar=False)
    # epochs 3 and 4 trained after the resume, from the weights of the end of epoch 2
    assert resumed["steps"] == fresh["steps"]
    hist, want = (pd.read_csv(d / "history.csv") for d in (tmp_path, tmp_path / "fresh"))
    assert list(hist["epoch"]) == [1, 2, 3, 4]
    for col in ("step", "train_loss", "train_acc", "val_loss", "val_acc"):
        np.testing.assert_allclose(hist[col], want[col], rtol=1e-5, err_msg=col)
    for key in ("final_val_acc", "test_acc", "epochs_run", "best_epoch"):
        assert resumed[key] == pytest.approx(fresh[key], rel=1e-5), key
    # the resumed fit timed its own steps only
    assert resumed["ms_per_step"] == pytest.approx(
        1000 * resumed["fit_time_s"] / (fresh["steps"] // 2), rel=1e-6)


def test_final_metrics_are_the_last_recorded_values() -> None:
    # validation every 2nd epoch of 3: final_val_* come from epoch 2, not empty
    rows = _rows(train_loss=[0.9, 0.5, 0.4], val_acc=[None, 0.8, None],
                 val_loss=[None, 0.6, None])
    out = history_metrics(rows, None, "classification")
    assert (out["final_train_loss"], out["final_val_acc"], out["final_val_loss"]) == (
        0.4, 0.8, 0.6)


def test_jobs_without_a_progress_bar_log_progress_lines(compose_cfg, tmp_path: Path,
                                                        caplog, monkeypatch) -> None:
    # a sweep job has no progress bar: a line per finished epoch, at most one every
    # PROGRESS_EVERY_S seconds (0 here, so every epoch)
    monkeypatch.setattr("initlab.callbacks.PROGRESS_EVERY_S", 0.0)
    cfg = compose_cfg(*NO_LOG, "trainer.max_epochs=2")
    with caplog.at_level(logging.INFO, logger="initlab.progress"):
        s = run(cfg, tmp_path, progress_bar=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "initlab.progress"]
    name = s["run_name"]
    assert [line.split(" (")[0] for line in lines] == [f"{name}: epoch 1/2",
                                                       f"{name}: epoch 2/2"]
    assert all("train_loss" in line and "val_acc" in line for line in lines)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="initlab.progress"):
        run(cfg, tmp_path / "bar", progress_bar=True)  # a progress bar shows it instead
    assert not [r for r in caplog.records if r.name == "initlab.progress"]


@pytest.mark.parametrize("extra", [[], ["lr_scheduler=cosine", "optimizer=adamw"]])
def test_module_hparams_are_the_modules_saved_hyperparameters(compose_cfg, extra) -> None:
    """What the vectorized engine logs for a member without building the module is what
    the ordinary run's module saves (and Lightning logs at fit start)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from initlab.config import study_config
    from initlab.module import build_model
    from initlab.pipeline import make_module, module_hparams

    cfg = compose_cfg(*NO_LOG, "seed=3", *extra)
    dm = instantiate(cfg.dataset, seed=cfg.seed)
    dm.prepare()
    act_cfg = OmegaConf.to_container(cfg.activation, resolve=True)
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), dm.input_shape,
                        dm.num_outputs, act_cfg)
    config = study_config(cfg)
    module = make_module(cfg, dm, model, act_cfg, config)
    assert module_hparams(cfg, dm, act_cfg, config) == dict(module.hparams_initial)
    assert module.hparams_initial["seed"] == 3 and module.hparams_initial["config"] == config

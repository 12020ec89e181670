"""InitStudyModule is a textbook LightningModule: Lightning's metrics, checkpoints,
schedulers and callbacks work on it, and its numbers are those of a direct evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from initlab.data.digits import DigitsDataModule
from initlab.module import InitStudyModule
from initlab.pipeline import run
from initlab.schedulers import warmup_cosine


class Keep(pl.Callback):
    """Keeps the trainer and module of a run for inspection."""

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.trainer, self.module = trainer, pl_module
        self.batches_per_epoch = trainer.num_training_batches

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        # torchmetrics state starts empty every epoch (Lightning resets logged metrics)
        self.start_weights = [*getattr(self, "start_weights", []),
                              float(pl_module.train_loss.weight)]

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.fit_metrics = dict(trainer.callback_metrics)  # trainer.test resets them


def _run(compose_cfg, tmp_path: Path, *overrides: str, name: str = "r") -> tuple[dict, Keep]:
    cfg = compose_cfg("diagnostics=off", *overrides)
    keep = Keep()
    summary = run(cfg, tmp_path / name, progress_bar=False, extra_callbacks=[keep])
    return summary, keep


def _history(tmp_path: Path, name: str = "r") -> pd.DataFrame:
    return pd.read_csv(tmp_path / name / "history.csv")


def _direct_eval(model: torch.nn.Module, dm: DigitsDataModule, split: str) -> tuple[float, float]:
    x, y = dm.splits[split]
    model.eval()
    with torch.no_grad():
        out = model(x)
    return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


def test_logged_epoch_metrics_equal_a_direct_evaluation(compose_cfg, tmp_path: Path) -> None:
    summary, keep = _run(compose_cfg, tmp_path, "trainer.max_epochs=2", "logger=none")
    assert summary["status"] == "completed", summary.get("error")
    metrics = keep.fit_metrics
    assert {"train/loss_epoch", "train/acc", "val/loss", "val/acc"} <= set(metrics)
    dm = keep.trainer.datamodule
    val_loss, val_acc = _direct_eval(keep.module.model, dm, "val")
    last = _history(tmp_path).iloc[-1]
    assert last["val_acc"] == pytest.approx(val_acc, abs=1e-6)
    assert last["val_loss"] == pytest.approx(val_loss, rel=1e-5)
    test_loss, test_acc = _direct_eval(keep.module.model, dm, "test")
    assert summary["test_acc"] == pytest.approx(test_acc, abs=1e-6)
    assert summary["test_loss"] == pytest.approx(test_loss, rel=1e-5)
    assert keep.start_weights == [0.0, 0.0]
    # the train means are of each epoch alone: epoch 2's equals its own batches' mean
    history = _history(tmp_path)
    assert history["train_loss"].iloc[1] < history["train_loss"].iloc[0]
    # one optimizer step per Lightning batch: the progress bar counts steps
    assert keep.batches_per_epoch == math.ceil(dm.describe()["n_train"] / 64)
    assert summary["steps"] == 2 * keep.batches_per_epoch


def test_best_checkpoint_is_kept_and_reloads_without_arguments(compose_cfg, tmp_path: Path
                                                               ) -> None:
    summary, _ = _run(compose_cfg, tmp_path, "trainer.max_epochs=4", "callbacks=model_checkpoint",
                      "optimizer.lr=0.2")
    assert summary["status"] == "completed", summary.get("error")
    ckpts = sorted((tmp_path / "r").rglob("best-*.ckpt"))
    assert len(ckpts) == 1
    history = _history(tmp_path)
    best = history.loc[history["val_acc"].idxmax()]
    assert ckpts[0].name == f"best-epoch{int(best['epoch']) - 1:03d}.ckpt"
    module = InitStudyModule.load_from_checkpoint(ckpts[0])  # the hparams rebuild it
    dm = DigitsDataModule(seed=0, val_frac=0.15, test_frac=0.15)
    result = pl.Trainer(logger=False, enable_progress_bar=False).validate(module, datamodule=dm,
                                                                        verbose=False)[0]
    assert result["val/acc"] == pytest.approx(best["val_acc"], abs=1e-6)
    assert result["val/loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_cosine_schedule_lowers_the_lr_as_its_formula(compose_cfg, tmp_path: Path) -> None:
    summary, _ = _run(compose_cfg, tmp_path, "trainer.max_epochs=4", "lr_scheduler=cosine",
                      "logger=none")
    assert summary["status"] == "completed", summary.get("error")
    lrs = _history(tmp_path)["lr"].tolist()
    # CosineAnnealingLR: lr_e = lr_0 (1 + cos(pi e / T)) / 2 for the epoch e (from 0)
    expected = [0.05 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_per_step_schedules_get_the_runs_length(compose_cfg, tmp_path: Path) -> None:
    summary, keep = _run(compose_cfg, tmp_path, "trainer.max_epochs=2", "lr_scheduler=onecycle",
                         "logger=none")
    assert summary["status"] == "completed", summary.get("error")
    sched = keep.trainer.lr_scheduler_configs[0]
    assert sched.interval == "step"
    assert sched.scheduler.total_steps == summary["steps"]
    # OneCycleLR starts at max_lr / div_factor (25) and ends near max_lr / (25 * 1e4)
    assert _history(tmp_path)["lr"].iloc[0] == pytest.approx(0.05 / 25)


def test_warmup_cosine_factor_follows_its_formula() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, total_steps=20, warmup_steps=4, min_lr_ratio=0.1)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    warm = [(t + 1) / 4 for t in range(4)]
    decay = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (t - 4) / 16)) for t in range(4, 20)]
    assert seen == pytest.approx(warm + decay, rel=1e-12)


def test_bad_scheduler_keys_are_named(compose_cfg, tmp_path: Path) -> None:
    summary, _ = _run(compose_cfg, tmp_path, "lr_scheduler=cosine",
                      "lr_scheduler.interval=hourly", "logger=none")
    assert summary["status"] == "failed"
    assert "lr_scheduler.interval='hourly'" in summary["error"]
    assert "epoch, step" in summary["error"]


def test_early_stopping_from_the_callbacks_group_stops_the_run(compose_cfg, tmp_path: Path
                                                               ) -> None:
    # no validation accuracy can rise by 0.5 twice: the run stops after patience + 1 epochs
    summary, _ = _run(compose_cfg, tmp_path, "trainer.max_epochs=10", "callbacks=early_stopping",
                      "callbacks.early_stopping.patience=1",
                      "callbacks.early_stopping.min_delta=0.5", "logger=none")
    assert summary["status"] == "completed", summary.get("error")
    assert summary["epochs_run"] == 2
    assert len(_history(tmp_path)) == 2


def test_trainer_callbacks_and_several_loggers(compose_cfg, tmp_path: Path, tb_events) -> None:
    summary, keep = _run(
        compose_cfg, tmp_path, "trainer.max_epochs=2", "logger=many",
        "+trainer.callbacks=[{_target_: pytorch_lightning.callbacks.LearningRateMonitor}]")
    assert summary["status"] == "completed", summary.get("error")
    events = tb_events(tmp_path / "r" / "tb")
    assert "lr-SGD" in events and "val/acc" in events
    csv = pd.read_csv(next((tmp_path / "r" / "csv").rglob("metrics.csv")))
    assert csv["val/acc"].dropna().tolist() == pytest.approx(_history(tmp_path)["val_acc"].tolist())


@pytest.mark.parametrize(("override", "key"), [
    ("+unknown=1", "unknown is not a known top-level key"),
    ("+trainer.checkpoint=true", "use the top-level key checkpoint=true"),
    ("+trainer.nonsense=3", "trainer.nonsense is not a pytorch_lightning.Trainer argument"),
    ("+callbacks.bad=3", "callbacks.bad=3 is not allowed"),
])
def test_unknown_keys_are_refused_naming_them(compose_cfg, tmp_path: Path, override: str,
                                              key: str) -> None:
    summary, _ = _run(compose_cfg, tmp_path, override, "logger=none")
    assert summary["status"] == "failed"
    assert key in summary["error"]
    assert summary.get("steps") is None  # refused before training


def test_train_and_val_means_of_an_epoch_share_a_step(compose_cfg, tmp_path: Path, tb_events
                                                      ) -> None:
    summary, keep = _run(compose_cfg, tmp_path, "trainer.max_epochs=2")
    events = tb_events(tmp_path / "r" / "tb")
    n = keep.batches_per_epoch
    for tag in ("train/loss_epoch", "train/acc", "val/loss", "val/acc"):
        assert [s for s, _ in events[tag]] == [n - 1, 2 * n - 1], tag
    # Lightning's step logging: step i (from 0) when (i + 1) % log_every_n_steps == 0
    assert [s for s, _ in events["train/loss"]] == [i for i in range(2 * n) if (i + 1) % 10 == 0]

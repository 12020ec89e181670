"""TrainingDiagnostics inside a real Trainer: tags in TensorBoard, warnings, episodes."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from initlab.diagnostics.callbacks import TrainingDiagnostics

LAYERS = ("net.0", "net.2")


class Tiny(pl.LightningModule):
    def __init__(self, loss_scale: float = 1.0, lr: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
        self.loss_scale, self.lr = loss_scale, lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y) * self.loss_scale

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def fit(tmp_path, module: pl.LightningModule, callback: TrainingDiagnostics, **kw) -> str:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 8), torch.randint(0, 2, (32,)))
    logger = TensorBoardLogger(str(tmp_path), name="run")
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        **kw,
    )
    trainer.fit(module, DataLoader(data, batch_size=8))
    return logger.log_dir


def test_tags_are_written(tmp_path):
    cb = TrainingDiagnostics(log_every_n_steps=2, histograms=True, dense_start=False)
    log_dir = fit(tmp_path, Tiny(), cb, max_epochs=2)
    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    scalars, hists = set(acc.Tags()["scalars"]), set(acc.Tags()["histograms"])
    for layer in LAYERS:
        for kind in ("grad_norm", "update_ratio", "dead_frac"):
            assert f"diag/{kind}/{layer}" in scalars
        assert f"diag/weights/{layer}" in hists
        assert f"diag/activations/{layer}" in hists
    assert "diag/grad_norm/total" in scalars
    # 8 optimizer steps, every 2nd one logged (steps 0, 2, 4, 6); dead_frac once per epoch.
    assert [e.step for e in acc.Scalars("diag/grad_norm/net.0")] == [0, 2, 4, 6]
    assert [e.step for e in acc.Scalars("diag/update_ratio/net.0")] == [0, 2, 4, 6]
    assert len(acc.Scalars("diag/dead_frac/net.0")) == 2
    ratio = acc.Scalars("diag/update_ratio/net.2")[0].value
    assert 0 < ratio < 1


def test_dense_start_logs_powers_of_two_then_the_interval(tmp_path):
    # 16 optimizer steps: interval 8 gives steps 0 and 8, dense_start adds 1, 2 and 4.
    cb = TrainingDiagnostics(log_every_n_steps=8, dead_frac=False)
    log_dir = fit(tmp_path, Tiny(), cb, max_epochs=4)
    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("diag/grad_norm/total")] == [0, 1, 2, 4, 8]
    assert [e.step for e in acc.Scalars("diag/update_ratio/net.0")] == [0, 1, 2, 4, 8]


def test_exploding_gradients_warn_once(tmp_path, caplog):
    cb = TrainingDiagnostics(log_every_n_steps=1, patience=3, dead_frac=False)
    with caplog.at_level(logging.WARNING, logger="initlab.diagnostics"):
        fit(tmp_path, Tiny(loss_scale=1e6, lr=0.0), cb, max_steps=8)
    warnings = [r for r in caplog.records if r.name == "initlab.diagnostics"]
    assert len(warnings) == 1  # one episode of 8 bad steps: one warning
    assert "exploding gradients" in warnings[0].getMessage()


def test_vanishing_gradients_warn(tmp_path, caplog):
    cb = TrainingDiagnostics(log_every_n_steps=4, patience=2, update_ratio=False)
    with caplog.at_level(logging.WARNING, logger="initlab.diagnostics"):
        fit(tmp_path, Tiny(loss_scale=1e-12, lr=0.0), cb, max_steps=6)
    messages = [r.getMessage() for r in caplog.records if r.name == "initlab.diagnostics"]
    assert len(messages) == 1 and "vanishing gradients" in messages[0]


def test_healthy_run_does_not_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="initlab.diagnostics"):
        fit(tmp_path, Tiny(), TrainingDiagnostics(patience=1), max_steps=4)
    assert not [r for r in caplog.records if r.name == "initlab.diagnostics"]


@pytest.mark.parametrize(
    ("bad", "read_every", "expected"),
    [
        ("XXXX...XXX...X", 1, 2),  # a long episode warns once, the next one again
        ("XXXX...XXX...X", 3, 2),
        ("XXXXX.XXX.", 5, 2),  # a whole new episode between two reads, after a warned one
        ("XXX.XXX", 3, 2),  # an episode that spans a read
        ("XX.XX.", 3, 0),  # patience 3 never reached
        ("XXXXXXXXX", 2, 1),
    ],
)
def test_warning_episodes(caplog, bad, read_every, expected):
    cb = TrainingDiagnostics(patience=3, vanish_bound=None)
    layer = nn.Linear(2, 2)
    cb._layers = [("layer", layer)]
    trainer = SimpleNamespace(global_step=0)
    with caplog.at_level(logging.WARNING, logger="initlab.diagnostics"):
        for step, flag in enumerate(bad):
            total = torch.tensor(1e4 if flag == "X" else 1.0)
            cb._count(total, {id(layer.weight): total})
            if step % read_every == read_every - 1:
                trainer.global_step = step
                cb._read_counters(trainer)
        cb._read_counters(trainer)  # as on_train_end
    assert len([r for r in caplog.records if r.name == "initlab.diagnostics"]) == expected


@pytest.mark.parametrize(("check_every", "warns"), [(None, 0), (1, 1)])
def test_check_stride_sets_what_patience_counts(tmp_path, caplog, check_every, warns):
    # 8 exploding steps, logged every 4: by default only steps 0 and 4 are checked, which
    # is fewer than patience=3 consecutive checks; checking every step finds the episode.
    cb = TrainingDiagnostics(log_every_n_steps=4, patience=3, check_every_n_steps=check_every,
                             dead_frac=False, update_ratio=False,
                             dense_start=False)
    with caplog.at_level(logging.WARNING, logger="initlab.diagnostics"):
        fit(tmp_path, Tiny(loss_scale=1e6, lr=0.0), cb, max_steps=8)
    assert len([r for r in caplog.records if r.name == "initlab.diagnostics"]) == warns


def test_final_dead_fractions_reach_the_summary(tmp_path):
    # half the hidden ReLUs are off on every input (a large negative bias): no gradient
    # reaches them, so they are still dead after training; the others are always on
    module = Tiny()
    with torch.no_grad():
        module.net[0].weight.mul_(0.01)
        module.net[0].bias[:8] = -100.0
        module.net[0].bias[8:] = 100.0
    cb = TrainingDiagnostics(log_every_n_steps=2)
    fit(tmp_path, module, cb, max_epochs=2)
    torch.manual_seed(0)
    x = torch.randn(32, 8)[:8]  # the first training batch: the callback's fixed batch
    with torch.no_grad():
        expected = (torch.relu(module.net[0](x)) <= 0).all(0).float().mean().item()
    assert expected == 0.5
    assert cb.summary["final_dead_frac_mean"] == pytest.approx(expected)
    assert cb.summary["final_dead_frac_max"] == pytest.approx(expected)  # the head: 0
    off = TrainingDiagnostics(dead_frac=False)
    fit(tmp_path / "off", Tiny(), off, max_epochs=1)
    assert off.summary == {}

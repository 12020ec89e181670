"""Lightning callbacks the pipeline always uses: divergence stop, epoch history, init probe.

Public hooks only: they read what the module logged (``trainer.callback_metrics``) and the
batch losses ``training_step`` returns, so they work with any LightningModule that logs
``train/loss_epoch``, ``train/acc``, ``val/loss`` and ``val/acc``."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from initlab.diagnostics.init_profile import InitProfile
from initlab.history import HISTORY_COLUMNS, HISTORY_KEYS, Diverged, is_divergent
from initlab.resume import STAMP_KEY, config_hash, current_identity

__all__ = ["ConfigStamp", "Diverged", "DivergenceGuard", "HistoryRecorder", "InitProbe",
           "is_divergent"]

log = logging.getLogger("initlab.progress")
# without a progress bar (sweep jobs), a line per finished epoch at most this often
PROGRESS_EVERY_S = 30.0


class DivergenceGuard(pl.Callback):
    """Stops training on the first non-finite training loss (or one above ``max_loss``).

    Reads the step losses of each training call (one host sync per call) and reports the
    exact optimizer step at which the loss went bad. Under DDP it checks the run's loss,
    the mean of the ranks' shard losses (one all-reduce per call), so that every rank
    stops at the same step: one rank stopping alone left the others in a collective.
    """

    def __init__(self, max_loss: float | None = None) -> None:
        self.max_loss = max_loss

    def _check_values(self, trainer: pl.Trainer, values: list[float]) -> None:
        for i, v in enumerate(values):
            if is_divergent(v, self.max_loss):
                step = trainer.global_step - len(values) + i
                # epochs numbered from 1, as history.csv, best_epoch and epochs_to_target
                raise Diverged(step, trainer.current_epoch + 1, v)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        values = loss.detach().reshape(-1).double()
        if trainer.world_size > 1:
            values = trainer.strategy.reduce(values.to(pl_module.device), reduce_op="mean")
        self._check_values(trainer, values.tolist())


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().cpu().item()
    return None if value is None else float(value)


class HistoryRecorder(pl.Callback):
    """One row per finished training epoch, from the epoch means the module logged
    (``trainer.callback_metrics``).

    The module logs its epoch means in its ``on_train_epoch_end``, which Lightning calls
    after the callbacks' (the epoch's validation ran before both); the row of epoch ``e``
    is read at the start of epoch ``e + 1``, at the end of fit, or when a checkpoint asks
    for this callback's state (checkpoint callbacks run after the module's hook). ``lr``
    is the first parameter group's learning rate the epoch started with.
    """

    KEYS = HISTORY_KEYS
    COLUMNS = HISTORY_COLUMNS

    def __init__(self, progress_every_s: float | None = None, name: str = "") -> None:
        """``progress_every_s``: log a line for a finished epoch when at least this long
        passed since the last one (progress for jobs without a progress bar; short runs
        stay quiet); ``name``: the run, for that line."""
        self.rows: list[dict[str, Any]] = []
        self._t0 = time.perf_counter()
        self.progress_every_s = progress_every_s
        self.name = name
        self._said_at = self._t0
        self._validated_epoch = -1
        self._epoch_lr: float | None = None
        self._pending: tuple[int, int, float | None] | None = None
        self._trainer: pl.Trainer | None = None
        self.start_step = 0  # the global step this fit started at (> 0 after a resume)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start_step = trainer.global_step

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush()
        opt = trainer.optimizers[0] if trainer.optimizers else None
        self._epoch_lr = float(opt.param_groups[0]["lr"]) if opt is not None else None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                                ) -> None:
        if not trainer.sanity_checking:
            self._validated_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the module logs the epoch's means in its own on_train_epoch_end, which Lightning
        # calls after this one: the row is read when next needed (next epoch, end of fit,
        # or a checkpoint, which Lightning writes after the module's hook)
        self._pending = (trainer.current_epoch, trainer.global_step, self._epoch_lr)
        self._trainer = trainer

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush()

    def _flush(self) -> None:
        if self._pending is None or self._trainer is None:
            return
        epoch, step, lr = self._pending
        self._pending = None
        trainer = self._trainer
        metrics = trainer.callback_metrics
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step}
        for col, key in self.KEYS.items():
            # val/* of an epoch without validation would be the last validation's: left empty
            if key in metrics and (self._validated_epoch == epoch or not key.startswith("val/")):
                row[col] = _scalar(metrics[key])
        if lr is not None:
            row["lr"] = lr
        now = time.perf_counter()
        row["time_s"] = round(now - self._t0, 4)
        self.rows.append(row)
        if self.progress_every_s is not None and now - self._said_at >= self.progress_every_s:
            self._said_at = now
            of = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
            shown = ", ".join(f"{col} {row[col]:.4g}" for col in self.KEYS if col in row)
            log.info("%s: epoch %d%s (%.0f s): %s", self.name, row["epoch"], of,
                     row["time_s"], shown)

    def state_dict(self) -> dict[str, Any]:
        self._flush()  # a checkpoint at an epoch's end holds that epoch's row
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))


class InitProbe(InitProfile, pl.Callback):
    """Probes the initialized network (after the module's ``setup`` applied the init,
    before the first step) and logs the per-layer table at step 0
    (``initlab.diagnostics.init_profile``). Works in any Trainer: the batch comes from
    the data module's ``sample_batch`` where it has one, else from the first training
    batches.

    Skipped on a resumed run: the weights it would see are no longer the init.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._probe(trainer, pl_module)

    def _probe(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step > 0 or trainer.ckpt_path:
            return
        x, y = probe_batch(trainer, self.batch_size)
        # initlab's module wraps the network as ``model``; any other module is probed whole
        model = pl_module.model if isinstance(getattr(pl_module, "model", None),
                                              torch.nn.Module) else pl_module
        self.run(model, x.to(pl_module.device), y.to(pl_module.device),
                 trainer.logger if trainer.is_global_zero else None)


def probe_batch(trainer: pl.Trainer, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training examples for a probe: the data module's fixed ``sample_batch(n)``
    where there is one (initlab's data modules), else the first training batches
    (``trainer.train_dataloader``, set once fit has started)."""
    dm = getattr(trainer, "datamodule", None)
    if dm is not None and hasattr(dm, "sample_batch"):
        return dm.sample_batch(n)
    loader = trainer.train_dataloader
    if loader is None:
        raise RuntimeError("no training data to probe: call the probe once fit has started")
    return first_examples(loader, n)


def first_examples(loader: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples of an ``(x, y)`` loader, from as many batches as needed."""
    xs, ys, have = [], [], 0
    for x, y in loader:
        xs.append(x)
        ys.append(y)
        have += len(x)
        if have >= n:
            break
    return torch.cat(xs)[:n], torch.cat(ys)[:n]


class ConfigStamp(pl.Callback):
    """Stores the run's config identity in every checkpoint (Lightning's callback state),
    so that a resume can tell whose checkpoint it is before loading it."""

    def __init__(self, cfg: DictConfig) -> None:
        self.identity = current_identity(cfg)

    @property
    def state_key(self) -> str:
        return STAMP_KEY  # what resume.read_stamp looks up

    def state_dict(self) -> dict[str, Any]:
        return {"config_hash": config_hash(self.identity), "config": self.identity}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass  # checked before fit (check_checkpoint); the current config stays

"""Training-time diagnostics: per-layer gradient norms, update ratios, dead units,
histograms, and a warning on exploding / vanishing gradients.

Cost model: work happens on logging steps only (``global_step % log_every_n_steps == 0``;
step 0, the first update from the init, is always one). The explode/vanish check runs every
``check_every_n_steps`` steps (default: the logging interval; 1 = every step, which costs
about a fifth of a small MLP's step on a CPU): it computes the gradient norms with one
``torch._foreach_norm`` and keeps its consecutive-check counters on the device, so there is
no host sync per step; the counters are read (and a warning issued) on logging steps and at
the end of training.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from initlab.diagnostics.probe import ForwardRecorder, preserved_state, weight_layers

log = logging.getLogger("initlab.diagnostics")
HIST_VALUES = 100_000  # activation values kept per layer for a histogram


def _grad_norms(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    foreach_norm = getattr(torch, "_foreach_norm", None)
    if foreach_norm is not None:
        try:
            return list(foreach_norm(grads))
        except RuntimeError:  # mixed devices / dtypes
            pass
    return [torch.linalg.vector_norm(g) for g in grads]


def _inputs_of(batch: Any) -> torch.Tensor | None:
    """The inputs of a batch: a tensor, an (x, y) pair, or a list of (x, y) pairs (a
    training call of several steps: its first minibatch)."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)) and batch:
        return _inputs_of(batch[0])
    return None


class TrainingDiagnostics(pl.Callback):
    """Log per-layer training diagnostics to the trainer's loggers.

    Tags (layer = module name inside the LightningModule, weight layers only):
    ``diag/grad_norm/<layer>`` and ``diag/grad_norm/total`` (all parameters; before gradient
    clipping), ``diag/update_ratio/<layer>`` = ||W_after - W_before|| / ||W_before|| across
    the optimizer step, ``diag/dead_frac/<layer>`` at each epoch end on the first
    ``fixed_batch_size`` examples of the first training batch (eval mode, no grad; "dead" as
    in ``probe``), and with ``histograms=True`` TensorBoard histograms ``diag/weights/<layer>``
    (logging steps) and ``diag/activations/<layer>`` (epoch end, fixed batch).

    A warning (logger ``initlab.diagnostics``) is issued once per episode when the total
    gradient norm exceeds ``explode_bound`` (or is not finite), or the first layer's (in
    forward order) falls below ``vanish_bound``, for ``patience`` consecutive checks (one
    check every ``check_every_n_steps`` steps).  Set a bound to None to disable that check.
    Assumes one optimizer and (x, y) or tensor batches.
    """

    def __init__(
        self,
        log_every_n_steps: int | None = None,
        grad_norms: bool = True,
        update_ratio: bool = True,
        dead_frac_every_epoch: bool = True,
        histograms: bool = False,
        explode_bound: float | None = 1e3,
        vanish_bound: float | None = 1e-7,
        patience: int = 5,
        fixed_batch_size: int = 256,
        check_every_n_steps: int | None = None,
    ) -> None:
        self.check_every_n_steps = check_every_n_steps
        self.log_every_n_steps = log_every_n_steps
        self.grad_norms = grad_norms
        self.update_ratio = update_ratio
        self.dead_frac_every_epoch = dead_frac_every_epoch
        self.histograms = histograms
        self.explode_bound = explode_bound
        self.vanish_bound = vanish_bound
        self.patience = patience
        self.fixed_batch_size = fixed_batch_size
        self._layers: list[tuple[str, nn.Module]] = []
        self._order: list[nn.Module] = []
        self._order_hooks: list[Any] = []
        self._fixed: torch.Tensor | None = None
        self._snapshot: dict[str, torch.Tensor] = {}
        self._snapshot_step = 0
        self._runs: torch.Tensor | None = None  # [explode, vanish] consecutive bad steps
        self._peaks: torch.Tensor | None = None  # longest runs since the last read
        self._since = 0  # steps counted since the last read
        self._last_total: torch.Tensor | None = None
        self._warned = [False, False]

    # -- setup -------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._layers = weight_layers(pl_module)
        self._order = []
        self._remove_order_hooks()
        # Record the forward order once (first training forward), then drop the hooks.
        for _, m in self._layers:
            self._order_hooks.append(m.register_forward_hook(self._record_order))

    def _remove_order_hooks(self) -> None:
        for h in self._order_hooks:
            h.remove()
        self._order_hooks = []

    def _record_order(self, module: nn.Module, _inp: Any, _out: Any) -> None:
        if all(module is not m for m in self._order):
            self._order.append(module)

    def _every(self, trainer: pl.Trainer) -> int:
        n = self.log_every_n_steps
        return trainer.log_every_n_steps if n is None else n

    def _is_log_step(self, trainer: pl.Trainer) -> bool:
        every = self._every(trainer)
        return every > 0 and trainer.global_step % every == 0

    def _first_layer(self) -> nn.Module | None:
        if self._order:
            return self._order[0]
        return self._layers[0][1] if self._layers else None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._fixed is None and (self.dead_frac_every_epoch or self.histograms):
            x = _inputs_of(batch)
            if x is not None:
                self._fixed = x[: self.fixed_batch_size].detach().clone()

    # -- every optimizer step ------------------------------------------------------------
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        self._remove_order_hooks()
        self._update_ratios(trainer)
        log_step = self._is_log_step(trainer)
        check_every = self.check_every_n_steps or self._every(trainer)
        check = (self.explode_bound is not None or self.vanish_bound is not None) and (
            check_every > 0 and trainer.global_step % check_every == 0
        )
        if not (check or log_step):
            return
        params = [p for p in pl_module.parameters() if p.grad is not None]
        if not params:
            return
        norms = _grad_norms([p.grad.detach() for p in params])
        device = norms[0].device
        total = torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))
        by_param = {id(p): n for p, n in zip(params, norms, strict=True)}
        if check:
            self._count(total, by_param, device)
        if not log_step:
            return
        metrics: dict[str, torch.Tensor] = {}
        if self.grad_norms:
            metrics["diag/grad_norm/total"] = total
            for name, m in self._layers:
                if id(m.weight) in by_param:
                    metrics[f"diag/grad_norm/{name}"] = by_param[id(m.weight)]
        self._log(trainer, metrics, trainer.global_step)
        if check:
            self._read_counters(trainer)
        if self.update_ratio:
            self._snapshot = {name: m.weight.detach().clone() for name, m in self._layers}
            self._snapshot_step = trainer.global_step
        if self.histograms:
            for name, m in self._layers:
                self._histogram(trainer, f"diag/weights/{name}", m.weight, trainer.global_step)

    def _count(
        self, total: torch.Tensor, by_param: dict[int, torch.Tensor], device: torch.device
    ) -> None:
        """Update the device-side run counters (no host sync)."""
        bad = []
        explode = self.explode_bound
        bad.append(~(total <= explode) if explode is not None else torch.tensor(False))
        first = self._first_layer()
        g = by_param.get(id(first.weight)) if first is not None else None
        vanish = self.vanish_bound is not None and g is not None
        bad.append(g.to(device) < self.vanish_bound if vanish else torch.tensor(False))
        bad_t = torch.stack([b.to(device) for b in bad]).long()
        if self._runs is None or self._runs.device != device:
            self._runs = torch.zeros(2, dtype=torch.long, device=device)
            self._peaks = torch.zeros(2, 2, dtype=torch.long, device=device)
        self._since += 1
        self._runs = (self._runs + 1) * bad_t
        # peaks[0]: longest run seen since the last read; peaks[1]: same, counting only runs
        # that started after it (a run longer than the steps since the read is older).
        new = self._runs * (self._runs <= self._since)
        self._peaks = torch.maximum(self._peaks, torch.stack([self._runs, new]))
        self._last_total = total

    def _read_counters(self, trainer: Any) -> None:
        """Host side: warn once per episode of >= patience consecutive bad steps."""
        if self._runs is None:
            return
        runs, (peak_all, peak_new) = self._runs.tolist(), self._peaks.tolist()
        for k, what in enumerate(("explode", "vanish")):
            old_episode_due = peak_all[k] >= self.patience and not self._warned[k]
            if peak_new[k] >= self.patience or old_episode_due:
                self._warn(what, trainer.global_step)
            # A current run of >= patience steps has been warned about (now or before).
            self._warned[k] = runs[k] >= self.patience
        self._peaks.zero_()
        self._since = 0

    def _warn(self, what: str, step: int) -> None:
        if what == "explode":
            log.warning(
                "exploding gradients: total gradient norm > %g (or not finite) for %d "
                "consecutive steps (checked at step %d, last norm %.3g); consider a smaller "
                "init scale or learning rate, or gradient clipping",
                self.explode_bound,
                self.patience,
                step,
                float(self._last_total),
            )
        else:
            log.warning(
                "vanishing gradients: first layer gradient norm < %g for %d consecutive steps "
                "(checked at step %d); the first layers are not learning",
                self.vanish_bound,
                self.patience,
                step,
            )

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._update_ratios(trainer)

    def _update_ratios(self, trainer: pl.Trainer) -> None:
        """Log ||W_after - W_before|| / ||W_before|| for the pending snapshot. Called before
        the next optimizer step and at the end of each training call (which may hold
        several steps), so the weights differ from the snapshot by exactly one update."""
        if not self._snapshot:
            return
        ratios = {}
        for name, m in self._layers:
            before = self._snapshot[name]
            delta = torch.linalg.vector_norm(m.weight.detach() - before)
            ratios[f"diag/update_ratio/{name}"] = delta / torch.linalg.vector_norm(before)
        self._snapshot = {}
        self._log(trainer, ratios, self._snapshot_step)

    # -- epoch end / end -------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._fixed is None or not (self.dead_frac_every_epoch or self.histograms):
            return
        recorder = ForwardRecorder(keep_act_values=HIST_VALUES if self.histograms else 0)
        with preserved_state(pl_module, train=False), torch.no_grad():
            with recorder.attach(pl_module):
                pl_module(self._fixed)
        step, recs = trainer.global_step, recorder.records
        if self.dead_frac_every_epoch:
            dead = {f"diag/dead_frac/{r.name}": (r.act or r.preact)["dead_frac"] for r in recs}
            self._log(trainer, dead, step)
        if self.histograms:
            for r in recs:
                self._histogram(trainer, f"diag/activations/{r.name}", r.act_values, step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._read_counters(trainer)
        self._remove_order_hooks()

    # -- output ----------------------------------------------------------------------------
    @staticmethod
    def _log(trainer: pl.Trainer, metrics: dict[str, Any], step: int) -> None:
        # Straight to the loggers: self.log would only flush on the trainer's own log steps.
        if not metrics or not trainer.loggers:
            return
        try:  # one device->host copy for all values
            as_t = [torch.as_tensor(v).detach().float().reshape(()) for v in metrics.values()]
            values = torch.stack(as_t).tolist()
        except RuntimeError:  # values on different devices
            values = [float(v) for v in metrics.values()]
        flat = dict(zip(metrics, values, strict=True))
        for logger in trainer.loggers:
            logger.log_metrics(flat, step=step)

    @staticmethod
    def _histogram(trainer: pl.Trainer, tag: str, values: torch.Tensor | None, step: int) -> None:
        if values is None or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            add = getattr(getattr(logger, "experiment", None), "add_histogram", None)
            if add is not None:
                add(tag, values.detach().float().cpu(), global_step=step)

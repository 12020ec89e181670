"""Training-time diagnostics: per-layer gradient norms, update ratios, dead units,
histograms, and a warning on exploding / vanishing gradients.

Cost model: work happens on logging steps only (``global_step % log_every_n_steps == 0``,
and with ``dense_start`` the powers of two below the interval; step 0, the first update from
the init, is always one); on other steps the hook does one comparison. A logging step
computes all gradient and weight norms with one ``torch._foreach_norm`` and copies them to
the host once. The explode/vanish check runs on the logging steps by default (on the host
copy); with ``check_every_n_steps`` its flags on other steps stay on the device until the
next logging step. Dead fractions are taken on the next validation pass after a logging
step (no forward of their own), reduced for all layers in a few ops.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from initlab.diagnostics.probe import (
    ForwardRecorder,
    hook_targets,
    preserved_state,
    weight_layers,
)
from initlab.diagnostics.training import (
    HIST_VALUES,
    DeadPlan,
    DiagnosticsSettings,
    EpisodeCounter,
    dead_fractions,
    dead_plan,
    gradient_warning,
    host_flags,
    inputs_of,
    layer_rows,
    relative_change,
    tensor_norms,
    to_host,
    total_norm,
)

log = logging.getLogger("initlab.diagnostics")


class TrainingDiagnostics(DiagnosticsSettings, pl.Callback):
    """Log per-layer training diagnostics to the trainer's loggers.

    Tags (layer = module name inside the LightningModule, weight layers only):
    ``diag/grad_norm/<layer>`` and ``diag/grad_norm/total`` (all parameters; the gradients
    ``on_before_optimizer_step`` sees: before Lightning's gradient clipping),
    ``diag/update_ratio/<layer>`` =
    ||W_after - W_before|| / ||W_before|| across the optimizer step, ``diag/dead_frac/<layer>``
    at the end of each epoch that had a logging step, on its validation pass (else on the
    first ``fixed_batch_size`` examples of the first training batch; eval mode, no grad;
    "dead" as in ``probe``) and once more at the end of training on that fixed batch (then
    only in ``summary``: ``final_dead_frac_max`` / ``final_dead_frac_mean``), and with
    ``histograms=True`` TensorBoard histograms ``diag/weights/<layer>`` (logging steps) and
    ``diag/activations/<layer>`` (with the dead fractions).

    A warning (logger ``initlab.diagnostics``) is issued once per episode when the total
    gradient norm exceeds ``explode_bound`` (or is not finite), or the first layer's (in
    forward order) falls below ``vanish_bound``, for ``patience`` consecutive checks (one
    check every ``check_every_n_steps`` steps).  Set a bound to None to disable that check.
    Assumes one optimizer and (x, y) or tensor batches.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """``DiagnosticsSettings``' arguments (the same names, defaults and order)."""
        DiagnosticsSettings.__init__(self, *args, **kwargs)
        self._layers: list[tuple[str, nn.Module]] = []
        self._params: list[nn.Parameter] = []
        self._targets: list[tuple[str, nn.Module, bool]] = []
        # (name, module whose output counts, unit dim, activation) per layer; [] = no plan
        self._dead_plan: DeadPlan | None = None
        self._finish_capture: Callable[[], tuple[dict[str, float], list[Any]]] | None = None
        self._captured_epoch = -1
        self._logged_since_capture = True
        self._order: list[nn.Module] = []
        self._order_hooks: list[Any] = []
        self._fixed: torch.Tensor | None = None
        self._snapshot: dict[str, torch.Tensor] = {}
        self._snapshot_step = 0
        self._step: int | None = None  # global step of the next optimizer step
        self._quiet_until = 0  # steps before this one neither log nor check
        self._snapshot_norms: list[float] = []
        # explode/vanish checks: device-side flags since the last read, host-side runs
        # one [explode, vanish] per check: a bool device tensor, or a host list on log steps
        self._flags: list[torch.Tensor | list[bool]] = []
        self._episodes = EpisodeCounter(self.patience)
        self._last_total: torch.Tensor | float | None = None
        # scalars for the run's summary.json, set at the end of training
        self.summary: dict[str, float] = {}

    # -- setup -------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._layers = weight_layers(pl_module)
        # walking the module tree costs tens of us: done once
        self._params = list(pl_module.parameters())
        self._targets = hook_targets(pl_module)
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

    def _first_layer(self) -> nn.Module | None:
        if self._order:
            return self._order[0]
        return self._layers[0][1] if self._layers else None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # global_step counted here: reading the trainer's property costs a few us a step
        self._step = trainer.global_step
        if self._fixed is None and (self.dead_frac or self.histograms):
            x = inputs_of(batch)
            if x is not None:
                self._fixed = x[: self.fixed_batch_size].detach().clone()

    # -- every optimizer step ------------------------------------------------------------
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        # Runs on every step: a comparison, unless this is a logging or checking step.
        step = self._step if self._step is not None else trainer.global_step
        self._step = step + 1
        if step < self._quiet_until and not self._snapshot and not self._order_hooks:
            return
        if self._order_hooks:
            self._remove_order_hooks()
        if self._snapshot:
            self._update_ratios(trainer)
        every = self._every(trainer)
        log_step, check = self.is_log_step(step, every), self.is_check_step(step, every)
        self._quiet_until = self.next_event(step, every)
        if not (check or log_step):
            return
        params = [p for p in self._params if p.grad is not None]
        if not params:
            return
        snap = log_step and self.update_ratio and bool(self._layers)
        with torch.no_grad():  # parameters without .detach() (one op each saved)
            weights = [m.weight for _, m in self._layers] if snap else []
            norms = tensor_norms([p.grad for p in params] + weights)  # one batched op
            if not log_step:  # a check-only step: the flags stay on the device
                gnorms = norms[: len(params)]
                self._count(total_norm(gnorms), dict(zip(map(id, params), gnorms,
                                                          strict=True)))
                return
            # A logging step: one device-to-host copy; the rest is arithmetic on floats.
            self._logged_since_capture = True
            values = to_host(norms)
            if snap:
                try:  # one batched copy for all layers
                    snapshot = list(torch._foreach_mul(weights, 1.0))
                except (AttributeError, RuntimeError):  # mixed devices / dtypes
                    snapshot = [w.clone() for w in weights]
        by_param = dict(zip(map(id, params), values, strict=False))
        total = math.hypot(*values[: len(params)])  # sqrt of the sum of squares, no overflow
        first = self._first_layer()
        g_first = by_param.get(id(first.weight)) if first is not None else None
        if self.grad_norms:
            metrics = {"diag/grad_norm/total": total}
            for name, m in self._layers:
                if id(m.weight) in by_param:
                    metrics[f"diag/grad_norm/{name}"] = by_param[id(m.weight)]
            self._write(trainer, metrics, step)
        if check:
            self._flags.append(self._host_flags(total, g_first))
            self._last_total = total
        self._read_counters(trainer)
        if snap:
            self._snapshot = dict(zip((name for name, _ in self._layers), snapshot, strict=True))
            self._snapshot_norms = values[len(params):]
            self._snapshot_step = step
        if self.histograms:
            for name, m in self._layers:
                self._histogram(trainer, f"diag/weights/{name}", m.weight, step)

    def _device_flags(self, total: torch.Tensor, g_first: torch.Tensor | None) -> torch.Tensor:
        """This check's [explode, vanish] flags as a device tensor (no host sync)."""
        off = torch.zeros((), dtype=torch.bool, device=total.device)
        explode = ~(total <= self.explode_bound) if self.explode_bound is not None else off
        vanish = self.vanish_bound is not None and g_first is not None
        return torch.stack([explode, g_first.to(total.device) < self.vanish_bound if vanish
                            else off])

    def _host_flags(self, total: float, g_first: float | None) -> list[bool]:
        return host_flags(total, g_first, self.explode_bound, self.vanish_bound)

    def _count(self, total: torch.Tensor, by_param: dict[int, torch.Tensor]) -> None:
        """Record one check from the total gradient norm and the per-parameter norms."""
        first = self._first_layer()
        self._last_total = total
        self._flags.append(self._device_flags(
            total, by_param.get(id(first.weight)) if first is not None else None))

    def _read_counters(self, trainer: Any) -> None:
        """Host side: replay the flags since the last read and warn once per episode of
        >= patience consecutive bad checks (at most once per kind per read)."""
        if not self._flags:
            return
        flags, self._flags = self._flags, []
        on_device = [i for i, f in enumerate(flags) if isinstance(f, torch.Tensor)]
        if on_device:  # one host sync for all device-side checks
            for i, row in zip(on_device, torch.stack([flags[i] for i in on_device]).tolist(),
                              strict=True):
                flags[i] = row
        for what in self._episodes.replay(flags):
            bound = self.explode_bound if what == "explode" else self.vanish_bound
            log.warning(gradient_warning(what, bound, self.patience, trainer.global_step,
                                         self._last_total))

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
        names = list(self._snapshot)
        before = list(self._snapshot.values())
        with torch.no_grad():
            now = [m.weight for _, m in self._layers]
            try:  # batched ops for all layers
                deltas = torch._foreach_sub(now, before)
            except (AttributeError, RuntimeError):  # mixed devices / dtypes
                deltas = [a - b for a, b in zip(now, before, strict=True)]
            changes = to_host(tensor_norms(deltas))
        self._snapshot = {}
        ratios = {f"diag/update_ratio/{n}": relative_change(d, w)
                  for n, d, w in zip(names, changes, self._snapshot_norms, strict=True)}
        self._write(trainer, ratios, self._snapshot_step)

    # -- once per epoch: dead fractions (and activation histograms) ---------------------------
    # Measured on the epoch's validation pass when there is one (its first batch; eval mode,
    # no grad): no forward of its own. An epoch without validation forwards the fixed batch.
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                                  ) -> None:
        if self._capture_due() and not trainer.sanity_checking:
            self._finish_capture = self._start_capture(pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                                ) -> None:
        self._end_capture(trainer)

    def _capture_due(self) -> bool:
        # Sampled like the other diagnostics: at the end of each epoch that had a logging
        # step (every epoch once epochs are longer than the logging interval).
        return (self.dead_frac or self.histograms) and self._logged_since_capture

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (not self._capture_due() or self._captured_epoch == trainer.current_epoch
                or self._fixed is None):
            return
        self._finish_capture = self._start_capture(pl_module)
        try:
            with preserved_state(pl_module, train=False), torch.no_grad():
                pl_module(self._fixed)
        finally:
            self._end_capture(trainer)

    def _end_capture(self, trainer: pl.Trainer) -> None:
        finish, self._finish_capture = self._finish_capture, None
        if finish is None:
            return
        dead, recs = finish()
        if not dead:  # nothing went through the model
            return
        self._captured_epoch = trainer.current_epoch
        self._logged_since_capture = False
        step = trainer.global_step
        if self.dead_frac:
            self._write(trainer, dead, step)
        for r in recs if self.histograms else ():
            self._histogram(trainer, f"diag/activations/{r.name}", r.act_values, step)

    def _start_capture(self, pl_module: pl.LightningModule
                       ) -> Callable[[], tuple[dict[str, float], list[Any]]]:
        """Hook the model for its next forward pass(es); the returned function removes the
        hooks and gives the dead fraction per layer (first pass) and the layer records."""
        if self.histograms or not self._dead_plan:
            recorder = ForwardRecorder(keep_act_values=HIST_VALUES if self.histograms else 0,
                                       outputs_only=True)
            attached = recorder.attach(pl_module, self._targets)
            attached.__enter__()

            def finish_recording() -> tuple[dict[str, float], list[Any]]:
                attached.__exit__(None, None, None)
                recs = recorder.records
                if self._dead_plan is None:
                    self._dead_plan = dead_plan(recs)
                if not recs:
                    return {}, []
                outs = [(r.act or r.preact)["output"] for r in recs]
                return dead_fractions(layer_rows(recs), outs), recs

            return finish_recording
        # With a plan: one light hook per layer keeps its first output, no records.
        plan = self._dead_plan
        outs: list[torch.Tensor | None] = [None] * len(plan)

        def keep(i: int, _m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            if outs[i] is None:
                outs[i] = out

        handles = [m.register_forward_hook(partial(keep, i)) for i, (_, m, _, _) in
                   enumerate(plan)]

        def finish_plan() -> tuple[dict[str, float], list[Any]]:
            for h in handles:
                h.remove()
            if any(o is None for o in outs):
                return {}, []
            return dead_fractions(plan, outs), []

        return finish_plan

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._read_counters(trainer)
        self._remove_order_hooks()
        self._final_dead_fractions(trainer, pl_module)

    def _final_dead_fractions(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                              ) -> None:
        """Dead fractions of the trained network on the fixed batch (eval mode, no grad),
        whatever the logging schedule: ``summary`` gets ``final_dead_frac_max`` (over all
        weight layers, as ``init_dead_frac_max``) and ``final_dead_frac_mean`` (over the
        hidden layers: all but the output layer), the values the init probe's
        ``init_dead_frac_*`` are compared with ("does an init prevent dying units?")."""
        if not self.dead_frac or self._fixed is None:
            return
        finish = self._start_capture(pl_module)
        try:
            with preserved_state(pl_module, train=False), torch.no_grad():
                pl_module(self._fixed)
        finally:
            dead, _ = finish()
        if not dead:
            return
        fractions = list(dead.values())  # forward order; the last is the output layer
        hidden = fractions[:-1] or fractions
        self.summary = {"final_dead_frac_max": max(fractions),
                        "final_dead_frac_mean": sum(hidden) / len(hidden)}

    def summary_fields(self) -> dict[str, float]:
        """What the run's summary.json gets from this callback (the final dead fractions)."""
        return dict(self.summary)

    # -- output ----------------------------------------------------------------------------
    @staticmethod
    def _write(trainer: pl.Trainer, metrics: dict[str, float], step: int) -> None:
        # Straight to the loggers: self.log would only flush on the trainer's own log steps.
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    @staticmethod
    def _histogram(trainer: pl.Trainer, tag: str, values: torch.Tensor | None, step: int) -> None:
        if values is None or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            add = getattr(getattr(logger, "experiment", None), "add_histogram", None)
            if add is not None:
                add(tag, values.detach().float().cpu(), global_step=step)

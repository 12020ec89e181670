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
    _unit_dim,
    dead_unit_counts,
    hook_targets,
    preserved_state,
    weight_layers,
)

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


def _host(values: list[Any]) -> list[float]:
    """Floats of 0-d tensors (or numbers), with one device-to-host copy in the usual case."""
    if not values:
        return []
    try:
        return torch.stack(values).tolist()
    except (RuntimeError, TypeError):  # numbers, other dtypes or devices
        return [float(v) for v in values]


def _total_norm(norms: list[torch.Tensor]) -> torch.Tensor:
    try:
        return torch.linalg.vector_norm(torch.stack(norms))
    except RuntimeError:  # norms on different devices
        device = norms[0].device
        return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))


def _ratio(change: float, norm: float) -> float:
    if norm:
        return change / norm
    return float("inf") if change else float("nan")


def host_flags(total: float, g_first: float | None, explode_bound: float | None,
               vanish_bound: float | None) -> list[bool]:
    """One check's [explode, vanish] flags: the total gradient norm above ``explode_bound``
    (or not finite), the first layer's below ``vanish_bound`` (a None bound: no check)."""
    explode = explode_bound is not None and not total <= explode_bound
    vanish = vanish_bound is not None and g_first is not None and g_first < vanish_bound
    return [explode, vanish]


class EpisodeCounter:
    """Consecutive bad explode/vanish checks: an episode is due (warned about) once, when
    its run of bad checks reaches ``patience``."""

    KINDS = ("explode", "vanish")

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.runs = [0, 0]

    def replay(self, rows: list[list[bool]]) -> list[str]:
        """Count the checks ``rows`` ([explode, vanish] each) in order; the kinds whose
        episode became due (each kind at most once)."""
        due = [False, False]
        for row in rows:
            for k, bad in enumerate(row):
                self.runs[k] = self.runs[k] + 1 if bad else 0
                due[k] |= self.runs[k] == self.patience
        return [kind for kind, d in zip(self.KINDS, due, strict=True) if d]


def gradient_warning(what: str, bound: float | None, patience: int, step: int,
                     last_total: float | None = None) -> str:
    """The warning text of an exploding (``what="explode"``) or vanishing gradient
    episode."""
    if what == "explode":
        return (f"exploding gradients: total gradient norm > {bound:g} (or not finite) for "
                f"{patience} consecutive checks (checked at step {step}, last norm "
                f"{float(last_total):.3g}); consider a smaller init scale or learning rate, "
                "or gradient clipping")
    return (f"vanishing gradients: first layer gradient norm < {bound:g} for {patience} "
            f"consecutive checks (checked at step {step}); the first layers are not learning")


DeadPlan = list[tuple[str, nn.Module, int, str]]


def _layer_rows(recs: list[Any]) -> DeadPlan:
    """(name, module whose output counts, unit dim, activation) per recorded layer: the
    activation after a weight layer, or the layer itself when none follows."""
    return [(r.name, r.act_module if r.act is not None else r.module, _unit_dim(r.module),
             r.act_name if r.act is not None else "none") for r in recs]


def _dead_plan(recs: list[Any]) -> DeadPlan:
    """``_layer_rows``, or [] when a module serves several layers (a shared activation,
    weight sharing): those need the recorder's pairing on every pass."""
    plan = _layer_rows(recs)
    unique = len({id(m) for _, m, _, _ in plan}) == len(plan)
    same_calls = len({r.calls for r in recs}) <= 1  # each layer once per forward
    return plan if unique and same_calls else []


def _dead_fractions(rows: DeadPlan, outs: list[torch.Tensor]) -> dict[str, float]:
    """``diag/dead_frac/<layer>`` from each row's output, reduced for all layers at once."""
    counts = dead_unit_counts(outs, [d for _, _, d, _ in rows], [act for *_, act in rows])
    return {f"diag/dead_frac/{name}": c / o.shape[d]
            for (name, _, d, _), c, o in zip(rows, counts, outs, strict=True)}


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

    def __init__(
        self,
        log_every_n_steps: int | None = None,
        grad_norms: bool = True,
        update_ratio: bool = True,
        dead_frac: bool = True,
        histograms: bool = False,
        explode_bound: float | None = 1e3,
        vanish_bound: float | None = 1e-7,
        patience: int = 5,
        fixed_batch_size: int = 256,
        check_every_n_steps: int | None = None,
        dense_start: bool = True,
    ) -> None:
        self.check_every_n_steps = check_every_n_steps
        self.dense_start = dense_start
        self.log_every_n_steps = log_every_n_steps
        self.grad_norms = grad_norms
        self.update_ratio = update_ratio
        self.dead_frac = dead_frac
        self.histograms = histograms
        self.explode_bound = explode_bound
        self.vanish_bound = vanish_bound
        self.patience = patience
        self.fixed_batch_size = fixed_batch_size
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
        self._episodes = EpisodeCounter(patience)
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

    def is_log_step(self, step: int, every: int) -> bool:
        """Whether optimizer step ``step`` logs, with ``every`` the logging interval
        (``log_every_n_steps``, or the trainer's when that is None)."""
        return every > 0 and (step % every == 0 or (
            self.dense_start and step < every and step & (step - 1) == 0))

    def is_check_step(self, step: int, every: int) -> bool:
        """Whether step ``step`` runs the explode/vanish check."""
        if self.explode_bound is None and self.vanish_bound is None:
            return False
        if self.check_every_n_steps:
            return step % self.check_every_n_steps == 0
        return self.is_log_step(step, every)

    def next_event(self, step: int, every: int) -> int:
        """The first step after ``step`` that logs or checks."""
        due = [step + every - step % every] if every > 0 else []
        if every > 0 and self.dense_start and step + 1 < every:
            due.append(1 << step.bit_length())  # the next power of two
        if self.check_every_n_steps:
            due.append(step + self.check_every_n_steps - step % self.check_every_n_steps)
        return min(due, default=1 << 62)

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
            x = _inputs_of(batch)
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
            norms = _grad_norms([p.grad for p in params] + weights)  # one batched op
            if not log_step:  # a check-only step: the flags stay on the device
                gnorms = norms[: len(params)]
                self._count(_total_norm(gnorms), dict(zip(map(id, params), gnorms,
                                                          strict=True)))
                return
            # A logging step: one device-to-host copy; the rest is arithmetic on floats.
            self._logged_since_capture = True
            values = _host(norms)
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
            changes = _host(_grad_norms(deltas))
        self._snapshot = {}
        ratios = {f"diag/update_ratio/{n}": _ratio(d, w)
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
                    self._dead_plan = _dead_plan(recs)
                if not recs:
                    return {}, []
                outs = [(r.act or r.preact)["output"] for r in recs]
                return _dead_fractions(_layer_rows(recs), outs), recs

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
            return _dead_fractions(plan, outs), []

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

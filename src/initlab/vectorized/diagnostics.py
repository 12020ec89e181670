"""Training-time diagnostics of the members of a vectorized job.

``MemberDiagnostics`` gives each member what ``TrainingDiagnostics`` gives an ordinary
run, with the same settings (the configured callback's, read without importing
Lightning by ``initlab.diagnostics.training.settings_from_config``), tags, steps and rules:
``diag/grad_norm/<layer>`` and ``diag/grad_norm/total`` (before clipping, as
Lightning's ``on_before_optimizer_step`` sees them), ``diag/update_ratio/<layer>``
across the optimizer step,
``diag/dead_frac/<layer>`` on the first validation batch at the end of each epoch that
logged, histograms with ``histograms=True``, and the exploding/vanishing gradient
warnings, counted per member. Every number is per member, reduced from the stacked
tensors in a few ops with one host copy per event. A member logs nothing from the step
it diverged on (it is frozen there).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from initlab.diagnostics.probe import (
    ForwardRecorder,
    hook_targets,
    member_dead_counts,
    weight_layers,
)
from initlab.diagnostics.training import (
    HIST_VALUES,
    DeadPlan,
    DiagnosticsSettings,
    EpisodeCounter,
    dead_plan,
    gradient_warning,
    host_flags,
    relative_change,
)

log = logging.getLogger("initlab.diagnostics")
# InitStudyModule holds the network as ``model``: an ordinary run's layer names start so
LAYER_PREFIX = "model."


def _member_norms(tensors: list[Tensor], k: int) -> list[list[float]]:
    """The 2-norm of each member's slice of each stacked tensor, (tensors, K), with one
    host copy."""
    if not tensors:
        return []
    return torch.stack([torch.linalg.vector_norm(t.reshape(k, -1), dim=1)
                        for t in tensors]).tolist()


class MemberDiagnostics:
    """The training-time diagnostics of K stacked members (see the module docstring).

    ``settings``: the job's diagnostics settings (``settings_from_config`` of the
    configured callback; a ``TrainingDiagnostics`` works too: only its options are read);
    ``loggers[k]``: member k's logger or None;
    ``every``: the trainer's ``log_every_n_steps`` (used when the settings' is None);
    ``run_names``: how the warnings name the members. The vectorized trainer calls
    ``before_step`` after the gradients are final, ``after_step`` after the optimizer
    step and ``end_epoch`` after the epoch's validation."""

    def __init__(self, settings: DiagnosticsSettings, model: Any, loggers: Sequence[Any],
                 every: int, run_names: Sequence[str]) -> None:
        self.s = settings
        self.model = model
        self.k = model.k
        self.loggers = list(loggers)
        self.every = every if settings.log_every_n_steps is None else settings.log_every_n_steps
        self.run_names = list(run_names)
        # weight layers in registration order, which is the forward order of the models
        # a vectorized job accepts (MLP, CNN)
        self.layers = [(LAYER_PREFIX + name, f"{name}.weight")
                       for name, _ in weight_layers(model.base)]
        self.episodes = [EpisodeCounter(settings.patience) for _ in range(self.k)]
        self._quiet_until = 0
        self._snapshot: list[Tensor] = []
        self._snapshot_norms: list[list[float]] = []
        self._snapshot_step = 0
        self._logged_since_capture = True
        self._plan: DeadPlan | None = None
        self.final: dict[int, dict[str, float]] = {}  # end_fit's per-member values

    @property
    def wants_fixed_batch(self) -> bool:
        """Dead fractions or histograms need an input batch when no validation runs."""
        return self.s.dead_frac or self.s.histograms

    def _write(self, j: int, metrics: dict[str, float], step: int) -> None:
        if self.loggers[j] is not None:
            self.loggers[j].log_metrics(metrics, step=step)

    def _histogram(self, j: int, tag: str, values: Tensor, step: int) -> None:
        add = getattr(getattr(self.loggers[j], "experiment", None), "add_histogram", None)
        if add is not None:
            add(tag, values.detach().float().cpu(), global_step=step)

    # ----------------------------------------------------------------- optimizer steps
    def before_step(self, step: int, frozen: Tensor) -> None:
        """Step ``step``'s gradient norms and checks (on logging/checking steps), and the
        weights before the update for the update ratios."""
        if step < self._quiet_until:
            return
        s = self.s
        log_step, check = s.is_log_step(step, self.every), s.is_check_step(step, self.every)
        self._quiet_until = s.next_event(step, self.every)
        if not (log_step or check):
            return
        names = [name for name, p in self.model.params.items() if p.grad is not None]
        if not names:
            return
        snap = log_step and s.update_ratio and bool(self.layers)
        with torch.no_grad():
            weights = [self.model.params[key] for _, key in self.layers] if snap else []
            rows = _member_norms([self.model.params[n].grad for n in names] + weights, self.k)
        grads = rows[: len(names)]
        grad_of = dict(zip(names, grads, strict=True))
        first = self.layers[0][1] if self.layers else None
        for j, is_frozen in enumerate(frozen.tolist()):
            if is_frozen:
                continue
            total = math.hypot(*(r[j] for r in grads))
            if check:
                g_first = grad_of[first][j] if first in grad_of else None
                flags = host_flags(total, g_first, s.explode_bound, s.vanish_bound)
                for what in self.episodes[j].replay([flags]):
                    bound = s.explode_bound if what == "explode" else s.vanish_bound
                    log.warning("run %s: %s", self.run_names[j],
                                gradient_warning(what, bound, s.patience, step, total))
            if log_step and s.grad_norms:
                metrics = {"diag/grad_norm/total": total}
                metrics.update({f"diag/grad_norm/{tag}": grad_of[key][j]
                                for tag, key in self.layers if key in grad_of})
                self._write(j, metrics, step)
            if log_step and s.histograms:
                for tag, key in self.layers:
                    self._histogram(j, f"diag/weights/{tag}", self.model.params[key][j], step)
        if log_step:
            self._logged_since_capture = True
        if snap:
            with torch.no_grad():
                self._snapshot = [w.detach().clone() for w in weights]
            self._snapshot_norms = rows[len(names):]
            self._snapshot_step = step

    def after_step(self, frozen: Tensor) -> None:
        """``diag/update_ratio/<layer>`` = ||W_after - W_before|| / ||W_before|| of the
        pending snapshot (one optimizer step apart)."""
        if not self._snapshot:
            return
        with torch.no_grad():
            now = [self.model.params[key] for _, key in self.layers]
            changes = _member_norms([a - b for a, b in zip(now, self._snapshot, strict=True)],
                                    self.k)
        self._snapshot = []
        for j, is_frozen in enumerate(frozen.tolist()):
            if not is_frozen:
                self._write(j, {f"diag/update_ratio/{tag}": relative_change(c[j], w[j])
                                for (tag, _), c, w in zip(self.layers, changes,
                                                           self._snapshot_norms, strict=True)},
                            self._snapshot_step)

    # ----------------------------------------------------------------- epoch ends
    def end_epoch(self, x: Tensor, shared: bool, step: int, frozen: Tensor) -> None:
        """Dead fractions (and activation histograms) on ``x`` - the first validation
        batch (``shared``: one batch for all), else each member's fixed training batch
        (K, B, ...) - at the end of an epoch that had a logging step; eval mode, no grad."""
        s = self.s
        if not (s.dead_frac or s.histograms) or not self._logged_since_capture or not len(x):
            return
        plan = self._dead_plan(x[:1] if shared else x[0, :1])
        if not plan:
            return
        outs = self._stacked_outputs(plan, x, shared)
        self._logged_since_capture = False
        dims = [d for _, _, d, _ in plan]
        counts = member_dead_counts(outs, dims, [act for *_, act in plan]).tolist()
        # units per layer: the unit dim of a member's output, after the member axis
        units = [o.shape[d % (o.dim() - 1) + 1] for o, d in zip(outs, dims, strict=True)]
        tags = [f"diag/dead_frac/{LAYER_PREFIX}{name}" for name, *_ in plan]
        for j, is_frozen in enumerate(frozen.tolist()):
            if is_frozen:
                continue
            if s.dead_frac:
                self._write(j, {tag: c[j] / n for tag, c, n in zip(tags, counts, units,
                                                                   strict=True)}, step)
            if s.histograms:
                for (name, *_), o in zip(plan, outs, strict=True):
                    self._histogram(j, f"diag/activations/{LAYER_PREFIX}{name}",
                                    o[j].flatten()[:HIST_VALUES], step)

    def end_fit(self, x: Tensor | None, frozen: Tensor) -> None:
        """Each live member's ``final_dead_frac_max`` / ``final_dead_frac_mean`` on its
        first training batch ``x`` (K, B, ...) after training, as the ordinary callback's
        ``summary`` (max over the weight layers, mean over all but the output layer);
        kept in ``final[k]``."""
        self.final = {}
        if not self.s.dead_frac or x is None or not len(x):
            return
        plan = self._dead_plan(x[0, :1])
        if not plan:
            return
        outs = self._stacked_outputs(plan, x, shared=False)
        dims = [d for _, _, d, _ in plan]
        counts = member_dead_counts(outs, dims, [act for *_, act in plan]).tolist()
        units = [o.shape[d % (o.dim() - 1) + 1] for o, d in zip(outs, dims, strict=True)]
        for j, is_frozen in enumerate(frozen.tolist()):
            if is_frozen:  # a diverged run gets none, as an ordinary one
                continue
            fractions = [c[j] / n for c, n in zip(counts, units, strict=True)]
            hidden = fractions[:-1] or fractions
            self.final[j] = {"final_dead_frac_max": max(fractions),
                             "final_dead_frac_mean": sum(hidden) / len(hidden)}

    def _dead_plan(self, x1: Tensor) -> DeadPlan:
        """(layer, module whose output counts, unit dim, activation) per weight layer, as
        the ordinary callback pairs them: from one recorded forward of member 0 on ``x1``.
        Empty (no dead fractions) when a module serves several layers."""
        if self._plan is None:
            base = self.model.base
            member0 = {name: t[0] for name, t in self.model.state().items()}
            recorder = ForwardRecorder(outputs_only=True)
            base.train(False)
            with torch.no_grad(), recorder.attach(base, hook_targets(base)):
                functional_call(base, member0, (x1,))
            self._plan = dead_plan(recorder.records)
            if not self._plan:
                log.info("vectorized job: no dead fractions (a module serves several layers)")
        return self._plan

    def _stacked_outputs(self, plan: DeadPlan, x: Tensor, shared: bool) -> list[Tensor]:
        """Each plan row's module output for every member, stacked (K, B, ...): one
        ``vmap`` forward whose hooks return what they saw."""
        base, modules = self.model.base, [m for _, m, _, _ in plan]

        def outputs(params: dict[str, Tensor], buffers: dict[str, Tensor], xb: Tensor
                    ) -> tuple[Tensor, ...]:
            seen: list[Tensor | None] = [None] * len(modules)

            def keep(i: int, _m: nn.Module, _inp: Any, out: Tensor) -> None:
                if seen[i] is None:
                    seen[i] = out

            handles = [m.register_forward_hook(partial(keep, i)) for i, m in enumerate(modules)]
            try:
                functional_call(base, (params, buffers), (xb,))
            finally:
                for h in handles:
                    h.remove()
            return tuple(seen)  # type: ignore[arg-type]

        base.train(False)
        with torch.no_grad():
            return list(vmap(outputs, in_dims=(0, 0, None if shared else 0))(
                self.model.params, self.model.buffers, x))

"""The Lightning-free pieces of the training-time diagnostics: their settings
(``DiagnosticsSettings``: what to log, when, the explode/vanish bounds), norm and ratio
helpers, the explode/vanish episode counting and the dead-fraction plan.

``TrainingDiagnostics`` (``initlab.diagnostics.callbacks``, a Lightning callback) and the
vectorized engine's ``MemberDiagnostics`` share them; the engine imports only this module,
so a vectorized job runs without importing Lightning (about 2.6 s a process here).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from initlab.diagnostics.probe import _unit_dim, dead_unit_counts

HIST_VALUES = 100_000  # activation values kept per layer for a histogram
# The config target whose settings ``settings_from_config`` reads without instantiating it.
CALLBACK_TARGET = "initlab.diagnostics.callbacks.TrainingDiagnostics"
# Hydra's instantiate keys that do not change a plain keyword construction.
_HARMLESS_HYDRA_KEYS = frozenset({"_target_", "_recursive_", "_convert_"})


def tensor_norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The 2-norm of each tensor (0-d tensors), with one batched op where possible."""
    foreach_norm = getattr(torch, "_foreach_norm", None)
    if foreach_norm is not None:
        try:
            return list(foreach_norm(tensors))
        except RuntimeError:  # mixed devices / dtypes
            pass
    return [torch.linalg.vector_norm(g) for g in tensors]


def to_host(values: list[Any]) -> list[float]:
    """Floats of 0-d tensors (or numbers), with one device-to-host copy in the usual case."""
    if not values:
        return []
    try:
        return torch.stack(values).tolist()
    except (RuntimeError, TypeError):  # numbers, other dtypes or devices
        return [float(v) for v in values]


def total_norm(norms: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all tensors together, from their norms."""
    try:
        return torch.linalg.vector_norm(torch.stack(norms))
    except RuntimeError:  # norms on different devices
        device = norms[0].device
        return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))


def relative_change(change: float, norm: float) -> float:
    """``change / norm`` (an update ratio); inf for a change of a zero weight, nan for no
    change of one."""
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


def layer_rows(recs: list[Any]) -> DeadPlan:
    """(name, module whose output counts, unit dim, activation) per recorded layer: the
    activation after a weight layer, or the layer itself when none follows."""
    return [(r.name, r.act_module if r.act is not None else r.module, _unit_dim(r.module),
             r.act_name if r.act is not None else "none") for r in recs]


def dead_plan(recs: list[Any]) -> DeadPlan:
    """``layer_rows``, or [] when a module serves several layers (a shared activation,
    weight sharing): those need the recorder's pairing on every pass."""
    plan = layer_rows(recs)
    unique = len({id(m) for _, m, _, _ in plan}) == len(plan)
    same_calls = len({r.calls for r in recs}) <= 1  # each layer once per forward
    return plan if unique and same_calls else []


def dead_fractions(rows: DeadPlan, outs: list[torch.Tensor]) -> dict[str, float]:
    """``diag/dead_frac/<layer>`` from each row's output, reduced for all layers at once."""
    counts = dead_unit_counts(outs, [d for _, _, d, _ in rows], [act for *_, act in rows])
    return {f"diag/dead_frac/{name}": c / o.shape[d]
            for (name, _, d, _), c, o in zip(rows, counts, outs, strict=True)}


def inputs_of(batch: Any) -> torch.Tensor | None:
    """The inputs of a batch: a tensor, an (x, y) pair, or a list of (x, y) pairs (a
    training call of several steps: its first minibatch)."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)) and batch:
        return inputs_of(batch[0])
    return None


class DiagnosticsSettings:
    """What the training-time diagnostics log and check, and on which steps (see
    ``initlab.diagnostics.callbacks.TrainingDiagnostics`` for the tags and rules).

    ``log_every_n_steps``: the logging interval (None: the trainer's); ``dense_start``: also
    log at the powers of two below it; ``check_every_n_steps``: the explode/vanish check
    stride (None: on the logging steps); a None bound disables that check."""

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
        self.log_every_n_steps = log_every_n_steps
        self.grad_norms = grad_norms
        self.update_ratio = update_ratio
        self.dead_frac = dead_frac
        self.histograms = histograms
        self.explode_bound = explode_bound
        self.vanish_bound = vanish_bound
        self.patience = patience
        self.fixed_batch_size = fixed_batch_size
        self.check_every_n_steps = check_every_n_steps
        self.dense_start = dense_start

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


SETTINGS_KEYS = tuple(inspect.signature(DiagnosticsSettings.__init__).parameters)[1:]


def settings_from_config(node: Any) -> DiagnosticsSettings | None:
    """The settings of a ``diagnostics.callback`` config node, without importing Lightning.

    None for a None node, and for a node this cannot read: another ``_target_`` (a custom
    callback), or Hydra's ``_partial_`` / ``_args_``; the caller instantiates those itself.
    Raises TypeError naming a key ``TrainingDiagnostics`` does not take."""
    if node is None:
        return None
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) \
        else dict(node)
    if values.get("_target_") != CALLBACK_TARGET or "_args_" in values \
            or values.get("_partial_"):
        return None
    unknown = [k for k in values if k not in SETTINGS_KEYS and k not in _HARMLESS_HYDRA_KEYS
               and k != "_partial_"]
    if unknown:
        raise TypeError(f"diagnostics.callback: unknown key(s) {', '.join(map(repr, unknown))}"
                        f" for {CALLBACK_TARGET}; allowed: {', '.join(SETTINGS_KEYS)}")
    return DiagnosticsSettings(**{k: v for k, v in values.items() if k in SETTINGS_KEYS})

"""Lightning callbacks the pipeline always uses: divergence stop, epoch history, init probe.

Public hooks only: they read what the module logged (``trainer.callback_metrics``) and the
batch losses ``training_step`` returns, so they work with any LightningModule that logs
``train/loss_epoch``, ``train/acc``, ``val/loss`` and ``val/acc``."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import pytorch_lightning as pl
import torch

log = logging.getLogger("initlab.progress")
# without a progress bar (sweep jobs), a line per finished epoch at most this often
PROGRESS_EVERY_S = 30.0


class Diverged(RuntimeError):
    """Raised to stop a run at once when the training loss is NaN or infinite: at optimizer
    step ``step`` (from 0) of epoch ``epoch`` (from 1, as history.csv's epochs)."""

    def __init__(self, step: int, epoch: int, value: float) -> None:
        super().__init__(f"training loss became {value} at step {step} (epoch {epoch})")
        self.step, self.epoch, self.value = step, epoch, value


def is_divergent(loss: float, max_loss: float | None) -> bool:
    """A training loss that stops a run: NaN, infinite, or above ``max_loss``."""
    return not math.isfinite(loss) or (max_loss is not None and loss > max_loss)


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

    KEYS = {
        "train_loss": "train/loss_epoch",
        "train_acc": "train/acc",
        "val_loss": "val/loss",
        "val_acc": "val/acc",
    }
    # history.csv's header when no epoch finished (a run that diverged in its first)
    COLUMNS = ("epoch", "step", *KEYS, "lr", "time_s")

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


class InitProbe(pl.Callback):
    """Probes the initialized network (after the module's ``setup`` applied the init,
    before the first step) and logs the per-layer table at step 0. Works in any Trainer:
    the batch comes from the data module's ``sample_batch`` where it has one, else from
    the first training batches.

    Skipped on a resumed run: the weights it would see are no longer the init.
    """

    # mean-field theory (Poole et al. 2016) is stated for plain MLPs with these activations
    MEANFIELD_ACTIVATIONS = ("tanh", "relu", "linear")

    def __init__(
        self,
        batch_size: int = 256,
        jacobian: bool = False,
        jacobian_examples: int = 8,
        activation: str | None = None,
        histogram_bins: int = 30,
    ) -> None:
        self.batch_size = batch_size
        self.jacobian = jacobian
        self.jacobian_examples = jacobian_examples
        self.activation = activation
        self.histogram_bins = histogram_bins
        self.records: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.histograms: list[dict[str, Any]] = []
        self.frame: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._probe(trainer, pl_module)

    @classmethod
    def from_config(cls, diag: Any, activation: str | None) -> InitProbe:
        """The probe of a run's ``diagnostics`` config (``probe_batch_size``, ``jacobian``,
        ``jacobian_examples``) for its activation."""
        return cls(diag.get("probe_batch_size", 256), jacobian=diag.get("jacobian", False),
                   jacobian_examples=diag.get("jacobian_examples", 8), activation=activation)

    def _probe(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step > 0 or trainer.ckpt_path:
            return
        x, y = probe_batch(trainer, self.batch_size)
        # initlab's module wraps the network as ``model``; any other module is probed whole
        model = pl_module.model if isinstance(getattr(pl_module, "model", None),
                                              torch.nn.Module) else pl_module
        self.run(model, x.to(pl_module.device), y.to(pl_module.device),
                 trainer.logger if trainer.is_global_zero else None)

    def run(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, logger: Any = None
            ) -> None:
        """Probe the initialized ``model`` on ``(x, y)`` (what ``on_fit_start`` does with the
        data module's sample batch); ``logger`` gets the per-layer values at step 0."""
        from initlab.diagnostics import probe, summarize_probe

        df = probe(model, x, y, jacobian=self.jacobian, jacobian_examples=self.jacobian_examples)
        self.frame = df
        self.records = df.to_dict("records")
        self.summary = dict(summarize_probe(df))
        self.summary.update(df.attrs.get("jacobian", {}))
        self.summary.update(self._theory(model))
        self.histograms = activation_histograms(model, x, self.histogram_bins)
        if logger is not None:
            log_init_profile(logger, self.records)

    def _theory(self, model: Any) -> dict[str, Any]:
        """Mean-field q*, chi_1 and depth scale from the init's sigma_w^2, sigma_b^2
        (only where the theory applies: an MLP with tanh/relu/linear)."""
        from initlab.models.mlp import MLP

        if not isinstance(model, MLP) or self.activation not in self.MEANFIELD_ACTIVATIONS:
            return {}
        from initlab.diagnostics.meanfield import meanfield_from_model

        mf = meanfield_from_model(model, self.activation)
        return {f"meanfield_{k}": mf[k] for k in ("sigma_w2", "sigma_b2", "q_star", "chi_1",
                                                    "xi_c") if k in mf}


# The probe's per-layer statistics that go to the logger.
PROFILE_STATS = ("act_std", "grad_std", "dead_frac", "saturated_frac")


def log_init_profile(logger: Any, records: list[dict[str, Any]]) -> None:
    """The init profile at step 0: one figure per statistic, ``init/<stat>`` (the layers
    on the x-axis, in forward order) where the logger draws figures (TensorBoard's
    ``add_figure``); else (CSV) scalars ``init/<stat>/<index>_<layer>``."""
    profiles = {}
    for stat in PROFILE_STATS:
        points = [(int(r["index"]), str(r["layer"]), float(r[stat])) for r in records
                  if r.get(stat) is not None and math.isfinite(float(r[stat]))]
        if points:
            profiles[stat] = points
    experiment = getattr(logger, "experiment", None)
    if not hasattr(experiment, "add_figure"):
        logger.log_metrics({f"init/{stat}/{i:02d}_{layer}": v for stat, points in
                            profiles.items() for i, layer, v in points}, step=0)
        return
    for stat, points in profiles.items():
        experiment.add_figure(f"init/{stat}", profile_figure(stat, points), global_step=0)


def profile_figure(stat: str, points: list[tuple[int, str, float]]) -> Any:
    """A matplotlib figure (Agg, no pyplot state) of one statistic over the layers:
    ``points`` are (layer index, layer name, value); standard deviations on a log axis
    (vanishing and exploding signals span decades)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.0, 0.45 * len(points) + 2.0), 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = [i for i, _, _ in points]
    ys = [v for _, _, v in points]
    ax.plot(xs, ys, marker="o")
    if stat.endswith("_std") and min(ys) > 0:
        ax.set_yscale("log")
    ax.set_xticks(xs, [f"{i} {layer}" for i, layer, _ in points], rotation=60, ha="right",
                  fontsize=7)
    ax.set_xlabel("layer")
    ax.set_ylabel(stat)
    ax.set_title(f"{stat} at init")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def activation_histograms(model: Any, x: torch.Tensor, bins: int = 30) -> list[dict[str, Any]]:
    """Per-layer histograms of the activations at init (one forward pass, no grad):
    ``[{"layer": name, "edges": [...], "counts": [...]}, ...]`` in forward order."""
    from initlab.models.activations import activation_name

    found: list[tuple[str, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, n=name: found.append((n, out.detach())))
        for name, m in model.named_modules()
        if activation_name(m) is not None
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    out = []
    for name, act in found:
        values = act.float().flatten().cpu()
        values = values[torch.isfinite(values)]
        if values.numel() == 0:
            continue
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            hi = lo + 1e-6
        counts = torch.histc(values, bins=bins, min=lo, max=hi)
        edges = torch.linspace(lo, hi, bins + 1)
        out.append({"layer": name, "edges": [round(float(e), 6) for e in edges],
                    "counts": [int(c) for c in counts]})
    return out


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

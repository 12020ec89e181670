"""One training run: build everything from the config, train, write the run folder.

``run`` never raises for a failing or diverging job: it records the outcome in
``summary.json`` and returns it, so a sweep goes on with its next job.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from initlab.config import (
    AXES,
    check_accelerator,
    lean_validation,
    run_name,
    study_config,
    trainer_kwargs,
    validate,
)
from initlab.results.files import HISTORY_FILE, SUMMARY_FILE, write_csv, write_json

log = logging.getLogger(__name__)


def quiet_libraries() -> None:
    """Drop Lightning's start-up chatter (accelerator lines, tips) and known
    third-party deprecation noise; warnings about the run itself still show."""
    import warnings

    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                 "lightning_fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # steps_per_call makes few Lightning batches per epoch; our own logging is per step
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")

STATUSES = ("completed", "diverged", "failed")


def _root_error(exc: BaseException) -> BaseException:
    """Hydra wraps errors raised by ``_target_`` constructors; report the real one."""
    while exc.__cause__ is not None and type(exc).__name__ == "InstantiationException":
        exc = exc.__cause__
    return exc


def _choices(cfg: DictConfig, choices: dict[str, str] | None) -> dict[str, str]:
    found = dict(choices or {})
    found.setdefault("init", str(cfg.init.get("scheme", "?")))
    found.setdefault("activation", str(cfg.activation.get("name", "?")))
    for group in ("dataset", "model", "optimizer"):
        target = str(cfg[group].get("_target_", "?"))
        found.setdefault(group, target.rsplit(".", 1)[-1].lower())
    return {k: str(v) for k, v in found.items() if v is not None and not k.startswith("hydra")}


def history_metrics(
    history: list[dict[str, Any]], target: float | None, task: str
) -> dict[str, Any]:
    """Final/best metrics and epochs to the target, derived from the per-epoch history."""
    out: dict[str, Any] = {"epochs_run": len(history)}
    if not history:
        return out
    # final_*: each metric's last recorded value (validation may skip the last epochs:
    # trainer.check_val_every_n_epoch)
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        recorded = [r[key] for r in history if r.get(key) is not None]
        if recorded:
            out[f"final_{key}"] = recorded[-1]
    # best_epoch: the first epoch at the best value of the ranking metric (validation
    # accuracy; validation loss without one, e.g. regression)
    vals = [(r["val_acc"], -r["epoch"]) for r in history if r.get("val_acc") is not None]
    if vals:
        best, neg_epoch = max(vals)
        out["best_val_acc"], out["best_epoch"] = best, -neg_epoch
    losses = [(r["val_loss"], r["epoch"]) for r in history
              if r.get("val_loss") is not None and not math.isnan(r["val_loss"])]
    if losses:
        out["best_val_loss"], epoch = min(losses)
        out.setdefault("best_epoch", epoch)
    train_losses = [r["train_loss"] for r in history if r.get("train_loss") is not None]
    if train_losses:
        out["best_train_loss"] = min(train_losses)
    if target is not None:
        if task == "classification":
            hit = [r["epoch"] for r in history if (r.get("val_acc") or 0.0) >= target]
        else:
            hit = [r["epoch"] for r in history if r.get("val_loss") is not None
                   and r["val_loss"] <= target]
        out["epochs_to_target"] = hit[0] if hit else None
    return out


# The summary.json of a run, in the steps both the pipeline and a vectorized job take.
def new_summary(cfg: DictConfig, choices: dict[str, str] | None,
                overrides: list[str] | None) -> dict[str, Any]:
    """A run's summary before training: status ``running``, its name, axes, seed,
    overrides and study config."""
    choices = _choices(cfg, choices)
    return {
        "status": "running",
        "run_name": cfg.get("run_name") or run_name(choices, cfg.seed, overrides),
        **{axis: choices.get(axis) for axis in AXES if axis != "seed"},
        "seed": cfg.seed,
        "overrides": list(overrides or []),
        "config": study_config(cfg),
    }


def record_setup(summary: dict[str, Any], task: str, data: dict[str, Any], model: Any) -> None:
    """The run's facts known once its data and model are built."""
    import torch

    summary["task"] = task
    summary["data"] = data
    summary["n_params"] = sum(p.numel() for p in model.parameters())
    summary["torch_threads"] = torch.get_num_threads()


def record_fit(summary: dict[str, Any], fit_time_s: float, steps: int,
               fit_steps: int | None = None) -> None:
    """``steps``: the run's optimizer steps; ``fit_steps``: those of this fit (fewer
    after a resume from a checkpoint), which ``fit_time_s`` timed."""
    summary["fit_time_s"] = fit_time_s
    summary["steps"] = steps
    fit_steps = steps if fit_steps is None else fit_steps
    if fit_steps:
        summary["ms_per_step"] = 1000 * fit_time_s / fit_steps


def record_divergence(summary: dict[str, Any], exc: Any) -> None:
    """``exc``: the ``callbacks.Diverged`` that stopped the run."""
    summary.update(status="diverged", diverged_step=exc.step, diverged_epoch=exc.epoch,
                   error=str(exc))


def record_failure(summary: dict[str, Any], exc: BaseException) -> BaseException:
    """Mark the run failed with the real error (see ``_root_error``); returns it."""
    root = _root_error(exc)
    summary.update(status="failed", error_type=type(root).__name__, error=str(root),
                   traceback="".join(traceback.format_exception(exc)))
    return root


def record_history(summary: dict[str, Any], rows: list[dict[str, Any]], cfg: DictConfig,
                   task: str, probe: Any = None) -> None:
    """The metrics of the run's history rows and, if it ran, the init probe's results."""
    summary.update(history_metrics(rows, cfg.get("target_metric"), task))
    summary["history"] = HISTORY_FILE
    if probe is not None and probe.records:
        summary["init_diagnostics"] = probe.records
        summary["init_act_histograms"] = probe.histograms
        summary.update(probe.summary)


def run(
    cfg: DictConfig,
    output_dir: str | Path,
    choices: dict[str, str] | None = None,
    overrides: list[str] | None = None,
    progress_bar: bool = True,
    extra_callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Train one configuration; write ``summary.json`` and ``history.csv`` in ``output_dir``."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from initlab.callbacks import (
        PROGRESS_EVERY_S,
        Diverged,
        DivergenceGuard,
        EpochMetricsProgressBar,
        HistoryRecorder,
        InitProbe,
    )
    from initlab.data.sequence import model_hints
    from initlab.distributed import (
        check_launcher,
        is_rank_zero,
        patch_ddp_for_hydra,
        restored_ddp_env,
    )
    from initlab.models.activations import activation_factory
    from initlab.module import InitStudyModule
    from initlab.parametrization import Parametrization, param_groups_factory, parametrize
    from initlab.resume import CHECKPOINT_DIR, last_checkpoint

    quiet_libraries()
    t0 = time.perf_counter()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = new_summary(cfg, choices, overrides)
    name = summary["run_name"]
    # sweep jobs run without a progress bar: a line now and then shows long ones moving
    history = HistoryRecorder(None if progress_bar else PROGRESS_EVERY_S, name)
    probe_cb: InitProbe | None = None
    callbacks: list[Any] = []
    logger = None
    task = "classification"
    try:
        validate(cfg)
        check_accelerator(cfg.trainer)
        check_launcher(cfg.trainer)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = instantiate(cfg.dataset, seed=cfg.seed)
        if hasattr(dm, "check_available"):
            dm.check_available()
        dm.prepare()
        task = dm.task
        act_cfg = OmegaConf.to_container(cfg.activation, resolve=True)
        make_act = activation_factory(**act_cfg)
        model = instantiate(
            cfg.model, input_shape=tuple(dm.input_shape), num_outputs=dm.num_outputs,
            activation=make_act, **model_hints(cfg.model, dm),
        )
        module = InitStudyModule(
            model,
            initializer=parametrize(instantiate(cfg.init), cfg.get("param")),
            optimizer=instantiate(cfg.optimizer),
            task=dm.task,
            num_outputs=dm.num_outputs,
            activation=make_act(),
            seed=cfg.seed,
            gradient_clip_val=cfg.trainer.get("gradient_clip_val"),
            gradient_clip_algorithm=cfg.trainer.get("gradient_clip_algorithm"),
            direct_steps=bool(cfg.trainer.get("direct_steps", True)),
            lean_validation=lean_validation(cfg.trainer),
            param_groups=param_groups_factory(Parametrization.from_config(cfg.get("param")),
                                              cfg.optimizer.lr, cfg.optimizer._target_),
        )
        if hasattr(dm, "steps_per_call"):
            dm.steps_per_call = int(cfg.trainer.get("steps_per_call", 1))
        record_setup(summary, dm.task, dm.describe(), model)

        callbacks = [DivergenceGuard(cfg.get("max_loss")), history,
                     *(extra_callbacks or [])]
        if progress_bar:
            callbacks.append(EpochMetricsProgressBar())
        diag = cfg.get("diagnostics") or {}
        if diag.get("probe", False):
            probe_cb = InitProbe.from_config(diag, act_cfg.get("name"))
            callbacks.append(probe_cb)
        if diag.get("callback"):
            callbacks.append(instantiate(diag.callback))
        if diag.get("coord_check"):
            callbacks.append(instantiate(diag.coord_check))
        ckpt_path = None
        if cfg.trainer.get("checkpoint", False):
            from pytorch_lightning.callbacks import ModelCheckpoint

            # checkpoints/last.ckpt at the end of every training epoch, after the module
            # published the epoch's means (Lightning runs checkpoint callbacks after the
            # module's hook). save_last=True with save_top_k=0 writes it only at the end
            # of fit; the version counter would name a resumed run's file last-v1.ckpt.
            callbacks.append(ModelCheckpoint(
                dirpath=out / CHECKPOINT_DIR, filename="last", monitor=None, save_top_k=1,
                save_last=False, every_n_epochs=1, save_on_train_epoch_end=True,
                enable_version_counter=False))
            ckpt_path = last_checkpoint(out)
            if ckpt_path is not None:
                log.info("resuming %s from %s", name, ckpt_path)
                summary["resumed_from"] = str(ckpt_path)
        if cfg.get("logger") and cfg.logger.get("_target_"):
            logger = instantiate(cfg.logger, save_dir=str(out), version=name)
        trainer = pl.Trainer(
            **trainer_kwargs(cfg.trainer),
            logger=logger if logger is not None else False,
            callbacks=callbacks,
            default_root_dir=str(out),
            enable_checkpointing=bool(cfg.trainer.get("checkpoint", False)),
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        patch_ddp_for_hydra()
        t_fit = time.perf_counter()
        with restored_ddp_env():
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
            record_fit(summary, time.perf_counter() - t_fit, trainer.global_step,
                       trainer.global_step - history.start_step)
            trainer.test(module, datamodule=dm, verbose=False)
        summary.update({k.replace("/", "_"): v for k, v in module.epoch_metrics.items()
                        if k.startswith("test/")})
        summary["status"] = "completed"
    except Diverged as exc:
        record_divergence(summary, exc)
        log.warning("run %s diverged: %s", name, exc)
    except Exception as exc:  # noqa: BLE001 - a failing job is recorded, never fatal
        root = record_failure(summary, exc)
        log.error("run %s failed: %s: %s", name, type(root).__name__, root)
    for cb in callbacks:  # e.g. the coordinate check's per-layer values
        summary.update(getattr(cb, "summary_fields", dict)())
    record_history(summary, history.rows, cfg, task, probe_cb)
    summary["wall_time_s"] = time.perf_counter() - t0
    if not is_rank_zero():  # DDP children: rank zero owns the run folder
        return summary
    write_csv(out / HISTORY_FILE, history.rows, HistoryRecorder.COLUMNS)
    write_json(out / SUMMARY_FILE, summary)
    if logger is not None:
        _log_hparams(logger, summary)
    return summary


HPARAM_METRICS = ("final_val_acc", "best_val_acc", "final_train_loss", "final_val_loss",
                  "test_acc", "best_val_loss", "epochs_to_target")


def _log_hparams(logger: Any, summary: dict[str, Any]) -> None:
    """Fill TensorBoard's HParams tab with the run's axes and final metrics."""
    params = {k: v for k, v in summary["config"].items() if isinstance(v, (int, float, str, bool))}
    params.update({axis: summary.get(axis) for axis in AXES})
    params["status"] = summary["status"]
    metrics = {f"hparams/{k}": float(summary[k]) for k in HPARAM_METRICS
               if isinstance(summary.get(k), (int, float))}
    try:
        logger.log_hyperparams(params, metrics=metrics)
        logger.finalize(summary["status"] if summary["status"] != "completed" else "success")
    except Exception as exc:  # noqa: BLE001 - logging must not change the run's outcome
        log.warning("could not write hparams to the logger: %s", exc)

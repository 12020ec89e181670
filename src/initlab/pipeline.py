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

from omegaconf import DictConfig, ListConfig, OmegaConf

from initlab.config import (
    AXES,
    check_accelerator,
    folder_name,
    run_name,
    study_config,
    sweep_keys,
    swept_keys,
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
    # tiny data sets have fewer batches per epoch than the logging interval: expected
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")

STATUSES = ("completed", "diverged", "failed", "interrupted")


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
                overrides: list[str] | None, run_dir: str | Path | None = None
                ) -> dict[str, Any]:
    """A run's summary before training: status ``running``, its name, axes, seed,
    overrides, the keys its sweep varies (``swept_keys``; the sweep's ``multirun.yaml``
    is found next to ``run_dir``) and study config."""
    choices = _choices(cfg, choices)
    swept = sweep_keys(run_dir)
    return {
        "status": "running",
        "run_name": (folder_name(cfg.run_name) if cfg.get("run_name")
                     else run_name(choices, cfg.seed, overrides, swept)),
        **{axis: choices.get(axis) for axis in AXES if axis != "seed"},
        "seed": cfg.seed,
        "overrides": list(overrides or []),
        "swept_keys": swept_keys(overrides, swept),
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


def _entries(node: Any, group: str) -> list[tuple[str, Any]]:
    """The ``_target_`` entries of a dict-of-entries group (``callbacks``, ``logger``):
    (name, config) pairs, null entries switched off; a group that is itself one
    ``_target_`` config is one entry. Raises ValueError naming a malformed entry."""
    if not node:
        return []
    if "_target_" in node:
        return [(group, node)]
    found = []
    for name, entry in node.items():
        if entry is None:
            continue
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            raise ValueError(f"{group}.{name}={entry!r} is not allowed: a config with "
                             "_target_ (and its arguments), or null to switch it off")
        found.append((str(name), entry))
    return found


def make_callbacks(cfg: DictConfig) -> list[Any]:
    """The ``callbacks`` group's and ``trainer.callbacks``' extra callbacks."""
    from hydra.utils import instantiate

    made = [instantiate(entry) for _, entry in _entries(cfg.get("callbacks"), "callbacks")]
    extra = cfg.trainer.get("callbacks") or []
    made += [instantiate(entry) for entry in extra]
    return made


def make_loggers(cfg: DictConfig, out: Path, version: str, lightning_free: bool = False
                 ) -> list[Any]:
    """The ``logger`` group's loggers, each writing under the run folder as ``version``
    (the run name) unless its config names another. ``lightning_free``: a plain
    TensorBoardLogger entry becomes the same files written without Lightning
    (``initlab.vectorized.events``; the vectorized engine's way)."""
    from hydra.utils import instantiate

    loggers = []
    for _, entry in _entries(cfg.get("logger"), "logger"):
        kwargs: dict[str, Any] = {}
        if "save_dir" not in entry:
            kwargs["save_dir"] = str(out)
        if entry.get("version") is None:
            kwargs["version"] = version
        if lightning_free:
            from initlab.vectorized.events import EventLogger, tensorboard_entry

            if tensorboard_entry(entry):
                options = OmegaConf.to_container(entry, resolve=True)
                options.pop("_target_")
                loggers.append(EventLogger(**{**options, **kwargs}))
                continue
        loggers.append(instantiate(entry, **kwargs))
    return loggers


def make_trainer(cfg: DictConfig, out: Path, callbacks: list[Any], loggers: list[Any],
                 progress_bar: bool) -> Any:
    """``instantiate(cfg.trainer)`` with initlab's callbacks and loggers added; initlab's
    defaults for the run folder, progress bar, model summary and sanity check apply
    where the trainer config does not set them."""
    from hydra.utils import instantiate
    from pytorch_lightning.callbacks import ModelCheckpoint

    defaults = {
        "default_root_dir": str(out),
        "enable_progress_bar": progress_bar,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        # Lightning's default checkpoint (every epoch into the logger folder) only when a
        # checkpoint callback asks for it
        "enable_checkpointing": any(isinstance(cb, ModelCheckpoint) for cb in callbacks),
    }
    given = {k: v for k, v in defaults.items() if cfg.trainer.get(k) is None}
    user_logger = cfg.trainer.get("logger")
    if user_logger is not None and user_logger is not True:
        loggers = [] if user_logger is False else [*loggers, *instantiate(
            user_logger if isinstance(user_logger, (list, ListConfig)) else [user_logger])]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **given,
                       _convert_="all")


def module_hparams(cfg: DictConfig, dm: Any, act_cfg: dict[str, Any], config: dict[str, Any],
                   model_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``InitStudyModule`` hyperparameters of a run (plain data: what rebuilds the
    module from a checkpoint, and what its loggers get at fit start), without building
    the module: the vectorized engine logs them for each member."""
    from initlab.init_data import INIT_BATCH_SIZE

    sched_cfg = cfg.get("lr_scheduler")
    return {
        "task": dm.task,
        "num_outputs": dm.num_outputs,
        "seed": cfg.seed,
        "init_batch_size": INIT_BATCH_SIZE,
        "model_config": (model_config if model_config is not None
                         else OmegaConf.to_container(cfg.model, resolve=True)),
        "optimizer_config": OmegaConf.to_container(cfg.optimizer, resolve=True),
        "lr_scheduler_config": (OmegaConf.to_container(sched_cfg, resolve=True)
                                if sched_cfg else None),
        "input_shape": list(dm.input_shape),
        "activation_config": act_cfg,
        "config": config,
    }


def make_module(cfg: DictConfig, dm: Any, model: Any, act_cfg: dict[str, Any],
                config: dict[str, Any], model_config: dict[str, Any] | None = None) -> Any:
    """The run's ``InitStudyModule`` around ``model`` (its hyperparameters:
    ``module_hparams``; ``model_config`` by default the model group's)."""
    from hydra.utils import instantiate

    from initlab.models.activations import activation_factory
    from initlab.module import InitStudyModule
    from initlab.parametrization import Parametrization, param_groups_factory, parametrize

    return InitStudyModule(
        model,
        initializer=parametrize(instantiate(cfg.init), cfg.get("param")),
        optimizer=instantiate(cfg.optimizer),
        activation=activation_factory(**act_cfg)(),
        param_groups=param_groups_factory(Parametrization.from_config(cfg.get("param")),
                                          cfg.optimizer.lr, cfg.optimizer._target_),
        **module_hparams(cfg, dm, act_cfg, config, model_config),
    )


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
        ConfigStamp,
        Diverged,
        DivergenceGuard,
        HistoryRecorder,
        InitProbe,
    )
    from initlab.compat import patch_ddp_for_hydra
    from initlab.data.sequence import model_hints
    from initlab.distributed import check_launcher, is_rank_zero, restored_ddp_env
    from initlab.jobcheck import check_job
    from initlab.models.activations import activation_factory
    from initlab.module import build_model
    from initlab.resume import CHECKPOINT_DIR, check_checkpoint
    from initlab.runguard import interruption, record_interruption

    quiet_libraries()
    t0 = time.perf_counter()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = new_summary(cfg, choices, overrides, out)
    name = summary["run_name"]
    # sweep jobs run without a progress bar: a line now and then shows long ones moving
    history = HistoryRecorder(None if progress_bar else PROGRESS_EVERY_S, name)
    probe_cb: InitProbe | None = None
    loggers: list[Any] = []
    callbacks: list[Any] = []
    task = "classification"
    interrupted = None
    try:
        check_job(cfg)
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
        # the data module's hints (a vocabulary size) where the model takes them
        model_cfg = {**OmegaConf.to_container(cfg.model, resolve=True),
                     **model_hints(cfg.model, dm)}
        model = build_model(model_cfg, tuple(dm.input_shape), dm.num_outputs, make_act)
        module = make_module(cfg, dm, model, act_cfg, summary["config"], model_cfg)
        record_setup(summary, dm.task, dm.describe(), model)

        callbacks = [DivergenceGuard(cfg.get("max_loss")), history, *make_callbacks(cfg),
                     *(extra_callbacks or [])]
        diag = cfg.get("diagnostics") or {}
        if diag.get("probe", False):
            probe_cb = InitProbe.from_config(diag, act_cfg.get("name"))
            callbacks.append(probe_cb)
        if diag.get("callback"):
            callbacks.append(instantiate(diag.callback))
        if diag.get("coord_check"):
            callbacks.append(instantiate(diag.coord_check))
        ckpt_path = None
        if cfg.get("checkpoint", False):
            from pytorch_lightning.callbacks import ModelCheckpoint

            # checkpoints/last.ckpt at the end of every training epoch, after the history
            # row of the epoch is recorded (checkpoint callbacks run after the others).
            # save_last=True with save_top_k=0 writes it only at the end of fit; the
            # version counter would name a resumed run's file last-v1.ckpt.
            callbacks.append(ModelCheckpoint(
                dirpath=out / CHECKPOINT_DIR, filename="last", monitor=None, save_top_k=1,
                save_last=False, every_n_epochs=1, save_on_train_epoch_end=True,
                enable_version_counter=False))
            callbacks.append(ConfigStamp(cfg))  # whose checkpoint it is (resume.py)
            ckpt_path = check_checkpoint(cfg, out)
            if ckpt_path is not None:
                log.info("resuming %s from %s", name, ckpt_path)
                summary["resumed_from"] = str(ckpt_path)
        loggers = make_loggers(cfg, out, name)
        trainer = make_trainer(cfg, out, callbacks, loggers, progress_bar)
        loggers = list(trainer.loggers)
        patch_ddp_for_hydra(required=trainer.world_size > 1)
        t_fit = time.perf_counter()
        with restored_ddp_env():
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
            record_fit(summary, time.perf_counter() - t_fit, trainer.global_step,
                       trainer.global_step - history.start_step)
            tested = trainer.test(module, datamodule=dm, verbose=False)
        summary.update({k.replace("/", "_"): float(v) for k, v in (tested[0] if tested else {}
                                                                    ).items()
                        if k.startswith("test/")})
        summary["status"] = "completed"
    except Diverged as exc:
        record_divergence(summary, exc)
        log.warning("run %s diverged: %s", name, exc)
    except Exception as exc:  # noqa: BLE001 - a failing job is recorded, never fatal
        root = record_failure(summary, exc)
        log.error("run %s failed: %s: %s", name, type(root).__name__, root)
    except BaseException as exc:  # SIGTERM: record the run as interrupted, then stop
        interrupted = interruption(exc)
        if interrupted is None:
            raise
        record_interruption(summary, interrupted)
        log.warning("run %s interrupted: %s", name, interrupted)
    # callbacks' own summary fields: the coordinate check's per-layer values, the
    # diagnostics' final dead fractions
    for cb in callbacks:
        summary.update(getattr(cb, "summary_fields", dict)())
    record_history(summary, history.rows, cfg, task, probe_cb)
    summary["wall_time_s"] = time.perf_counter() - t0
    if not is_rank_zero():  # DDP children: rank zero owns the run folder
        return summary
    write_csv(out / HISTORY_FILE, history.rows, HistoryRecorder.COLUMNS)
    write_json(out / SUMMARY_FILE, summary)
    for logger in loggers:
        _log_hparams(logger, summary)
    if interrupted is not None:
        raise interrupted
    return summary


HPARAM_METRICS = ("final_val_acc", "best_val_acc", "final_train_loss", "final_val_loss",
                  "test_acc", "best_val_loss", "epochs_to_target")
# The HParams tab's columns: these, the keys the sweep varies, then the run's status.
# TensorBoard takes the columns and their types from ONE run's definition, so every run
# lists the same keys and metrics with the same types.
HPARAM_KEYS = ("init", "seed", "init.mode", "init.gain")
STRING_HPARAMS = ("init.gain",)  # a number (1.0) or a word (auto, preserve): always text


def _hparam_value(key: str, summary: dict[str, Any]) -> Any:
    """A run's value of ``key``: its config value, else its axis (``model=cnn``), else the
    value of its override (``lr_scheduler=cosine``); a missing one is ``"none"``."""
    config = summary.get("config") or {}
    if key in config:
        value = config[key]
    elif key in summary:
        value = summary[key]
    else:
        found = [o.split("=", 1)[1] for o in summary.get("overrides") or []
                 if "=" in o and o.split("=", 1)[0].lstrip("+~") == key]
        value = found[-1] if found else None
    if value is None:
        return "none"
    if key in STRING_HPARAMS or not isinstance(value, (bool, int, float, str)):
        return str(value)
    return value


def hparams_of(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """(hyperparameters, metrics) of the HParams tab: the core keys and the swept ones,
    and every ``hparams/<metric>`` (NaN where the run has no value: not reached, or no
    such split), so that all runs define the same columns."""
    keys = [*HPARAM_KEYS, *(k for k in summary.get("swept_keys") or [] if k not in HPARAM_KEYS)]
    params = {key: _hparam_value(key, summary) for key in keys}
    params["status"] = summary["status"]
    metrics = {f"hparams/{k}": float(summary[k]) if isinstance(summary.get(k), (int, float))
               else math.nan for k in HPARAM_METRICS}
    return params, metrics


def log_hyperparams(logger: Any, params: dict[str, Any],
                    metrics: dict[str, float] | None = None) -> None:
    """``logger.log_hyperparams(params, metrics=metrics)`` where the logger takes metrics
    (TensorBoard's HParams tab), ``logger.log_hyperparams(params)`` where it does not
    (Lightning's CSVLogger)."""
    import inspect

    if metrics is not None and "metrics" in inspect.signature(logger.log_hyperparams).parameters:
        logger.log_hyperparams(params, metrics=metrics)
    else:
        logger.log_hyperparams(params)


def _log_hparams(logger: Any, summary: dict[str, Any]) -> None:
    """Fill TensorBoard's HParams tab with the run's axes and final metrics; finalize the
    logger (a CSV logger writes its metrics.csv then)."""
    params, metrics = hparams_of(summary)
    try:
        log_hyperparams(logger, params, metrics)
    except Exception as exc:  # noqa: BLE001 - logging must not change the run's outcome
        log.warning("could not write hparams to the logger: %s", exc)
    try:
        logger.finalize(summary["status"] if summary["status"] != "completed" else "success")
    except Exception as exc:  # noqa: BLE001 - logging must not change the run's outcome
        log.warning("could not finalize the logger: %s", exc)

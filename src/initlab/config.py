"""Config helpers: flattening, run names and validation before training."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

# Keys a study varies; they lead every run name and results row.
AXES = ("dataset", "model", "init", "activation", "optimizer", "seed")
# Keys that were initlab's own in the trainer group before it held Trainer arguments only.
MOVED_TRAINER_KEYS = {
    "checkpoint": "the top-level key checkpoint=true",
    "steps_per_call": "nothing: one optimizer step per Lightning batch now (remove it)",
    "direct_steps": "nothing: Lightning runs every step (remove it)",
    "lean_validation": "nothing: Lightning's validation loop runs (remove it)",
}
# Top-level keys besides the config groups (conf/config.yaml, experiments, sweepers).
TOP_LEVEL_KEYS = ("seed", "run_name", "target_metric", "threads", "max_loss", "checkpoint",
                  "paths", "study", "scale", "vectorize", "hydra")
CONFIG_GROUPS = ("dataset", "model", "init", "activation", "optimizer", "lr_scheduler",
                 "trainer", "callbacks", "logger", "diagnostics", "param")


# Bookkeeping keys that say where output goes, not what was trained.
NOT_STUDY_KEYS = ("logger.", "paths.", "run_name", "hydra.", "threads")


def study_config(cfg: DictConfig) -> dict[str, Any]:
    """The flat config of what was trained (output locations left out). Keys are
    resolved one group at a time so that ``${hydra:...}`` in the left-out groups is
    never needed (e.g. when composing outside a Hydra run)."""
    out: dict[str, Any] = {}
    for key in cfg:
        if f"{key}.".startswith(NOT_STUDY_KEYS) or str(key).startswith(NOT_STUDY_KEYS):
            continue
        node = cfg[key]
        if isinstance(node, DictConfig):
            out.update(flatten(node, prefix=f"{key}."))
        elif not str(key).startswith("_"):
            out[str(key)] = flatten({key: node})[str(key)]
    return out


def flatten(cfg: DictConfig | dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model.depth": 3, ...}`` for every leaf, skipping ``_target_``-like keys."""
    container = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    out: dict[str, Any] = {}
    for key, value in container.items():
        if str(key).startswith("_"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple, ListConfig)):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = value
    return out


def shorten(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` bytes (UTF-8), else its start and a hash of all
    of it (``~`` + 10 hex digits): names stay distinct and the same text always gives the
    same name (a rerun finds its folder)."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    head = raw[: limit - 11].decode("utf-8", "ignore")
    return f"{head}~{hashlib.sha1(raw).hexdigest()[:10]}"


def slug(text: str) -> str:
    """A folder-safe version of an override string (keeps ``=`` and ``,``): one path
    component inside its parent (no ``/``; never ``.`` or ``..``)."""
    name = shorten(re.sub(r"[^A-Za-z0-9=,._+-]+", "_", text), 120) or "default"
    return "_" * len(name) if set(name) == {"."} else name


def folder_name(text: str) -> str:
    """``text`` as one folder name (a user's ``run_name``: ``../x`` or ``/abs`` would put
    TensorBoard files outside the run folder): ``slug`` of it."""
    return slug(str(text))


def job_dirname(text: str) -> str:
    """A job folder name from Hydra's ``override_dirname``: ``/`` (from a value such as
    ``+x=../../y``, which would put the run folder outside the sweep) becomes ``%2F``;
    nothing else changes, so folders of earlier sweeps keep their names and resume.
    Shortened with a hash past ``JOB_DIRNAME_LIMIT`` bytes."""
    return shorten(str(text).replace("/", "%2F").replace("\0", ""), JOB_DIRNAME_LIMIT)


# Job folders are <job number>_<overrides> (conf/config.yaml, hydra.sweep.subdir); a file
# name has at most 255 bytes, which a dozen overrides exceed. Names that fit (with room
# for the job number) are kept as they are, so sweeps made before still resume.
JOB_DIRNAME_LIMIT = 245
OmegaConf.register_new_resolver("initlab.dirname", job_dirname, replace=True)


# Where Hydra writes a sweep's config (with the command's overrides) in the sweep folder.
SWEEP_CONFIG_FILE = "multirun.yaml"


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _names_a_run(key: str) -> bool:
    """A key of the study (not where output goes): it may name a run."""
    return not (key.startswith(NOT_STUDY_KEYS) or key.startswith("dataset.data_dir"))


def sweep_keys(run_dir: str | Path | None) -> list[str] | None:
    """The keys a sweep varies (the overrides of its command with several values:
    ``init=he,xavier``, ``seed=range(3)``), read from the ``multirun.yaml`` Hydra writes in
    the sweep folder, the parent of a job's run folder; None outside a sweep (or when that
    file cannot be read). A job sees only its own values; this is what tells
    ``trainer.max_epochs=1``, shared by all jobs, from ``init=he``, one of the swept ones."""
    if run_dir is None:
        return None
    path = Path(run_dir).parent / SWEEP_CONFIG_FILE
    try:
        stat = path.stat()
    except OSError:
        return None
    # every run of a sweep asks (a vectorized job: all at once): the file is read once
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _sweep_keys_read:
        _sweep_keys_read[key] = _read_sweep_keys(path)
    found = _sweep_keys_read[key]
    return None if found is None else list(found)


_sweep_keys_read: dict[tuple[str, int, int], list[str] | None] = {}


def _read_sweep_keys(path: Path) -> list[str] | None:
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        task = OmegaConf.select(OmegaConf.load(path), "hydra.overrides.task") or []
        parsed = OverridesParser.create().parse_overrides([str(o) for o in task])
    except Exception:  # noqa: BLE001 - an unreadable file: name the run by its own overrides
        return None
    return [ov.key_or_group for ov in parsed if ov.is_sweep_override()]


def swept_keys(overrides: list[str] | None, swept: list[str] | None = None) -> list[str]:
    """The keys of the job's ``overrides`` that set it apart in its sweep (``swept``: the
    sweep's varying keys, ``sweep_keys``; None = every override of the job), in the
    job's order; ``init`` and ``seed`` (always in a run name) and where-output-goes keys
    (``paths.*``, ``logger.*``, ``run_name``, ``dataset.data_dir``, ...) left out."""
    out: list[str] = []
    for ov in overrides or []:
        key = _override_key(ov)
        if ("=" not in ov or key in ("init", "seed", *out) or not _names_a_run(key)
                or (swept is not None and key not in swept)):
            continue
        out.append(key)
    return out


def run_name(choices: dict[str, str], seed: int, overrides: list[str] | None = None,
             swept: list[str] | None = None) -> str:
    """``init=he/activation=relu/seed=0``: the init, then each override of the job whose
    key the sweep varies (``swept``, see ``swept_keys``), then the seed. Parts are joined
    by ``/`` (TensorBoard shows the run as a path and groups runs by init); each part is
    one folder name (``slug``: no ``/``, never ``..``), so the run stays in its folder."""
    values = {_override_key(ov): ov.split("=", 1)[1] for ov in overrides or [] if "=" in ov}
    parts = [f"init={choices.get('init')}"]
    parts += [f"{key}={values[key]}" for key in swept_keys(overrides, swept)]
    parts.append(f"seed={seed}")
    return "/".join(slug(part) for part in parts)


def trainer_kwargs(trainer_cfg: DictConfig) -> dict[str, Any]:
    """The ``pl.Trainer`` arguments of the trainer group (without ``_target_``)."""
    kwargs = OmegaConf.to_container(trainer_cfg, resolve=True)
    return {k: v for k, v in kwargs.items() if not str(k).startswith("_")}


# pl.Trainer's arguments in Lightning 2.6 (tests/test_config.py compares them with the
# installed Trainer): a config whose trainer keys are all here is checked without
# importing Lightning, which costs seconds; any other key is checked against the
# installed Trainer itself.
TRAINER_ARGS = frozenset((
    "accelerator", "strategy", "devices", "num_nodes", "precision", "logger", "callbacks",
    "fast_dev_run", "max_epochs", "min_epochs", "max_steps", "min_steps", "max_time",
    "limit_train_batches", "limit_val_batches", "limit_test_batches",
    "limit_predict_batches", "overfit_batches", "val_check_interval",
    "check_val_every_n_epoch", "num_sanity_val_steps", "log_every_n_steps",
    "enable_checkpointing", "enable_progress_bar", "enable_model_summary",
    "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm",
    "deterministic", "benchmark", "inference_mode", "use_distributed_sampler", "profiler",
    "detect_anomaly", "barebones", "plugins", "sync_batchnorm",
    "reload_dataloaders_every_n_epochs", "default_root_dir", "enable_autolog_hparams",
    "model_registry"))


def check_trainer_keys(trainer_cfg: DictConfig) -> None:
    """Every key of the trainer group is a ``pl.Trainer`` argument; raises ValueError
    naming the first that is not (and where a moved initlab key went)."""
    keys = [str(k) for k in trainer_cfg if not str(k).startswith("_")]
    if all(k in TRAINER_ARGS for k in keys):
        return
    import inspect

    import pytorch_lightning as pl

    allowed = [p for p in inspect.signature(pl.Trainer).parameters if p != "self"]
    for key in trainer_cfg:
        key = str(key)
        if key.startswith("_") or key in allowed:
            continue
        if key in MOVED_TRAINER_KEYS:
            raise ValueError(f"trainer.{key} is not a pytorch_lightning.Trainer argument; "
                             f"use {MOVED_TRAINER_KEYS[key]}")
        raise ValueError(f"trainer.{key} is not a pytorch_lightning.Trainer argument; "
                         f"allowed: {', '.join(allowed)}")


def check_top_level_keys(cfg: DictConfig) -> None:
    """Refuse unknown top-level keys (``+unknown=1``), naming the key and the allowed ones."""
    allowed = (*CONFIG_GROUPS, *TOP_LEVEL_KEYS)
    for key in cfg:
        if str(key) not in allowed:
            raise ValueError(f"{key} is not a known top-level key; allowed: "
                             f"{', '.join(sorted(allowed))} (a group's keys go under it, "
                             "e.g. model.width=64)")


def _check(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ValueError(f"{key}={value!r} is not allowed: {allowed}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(cfg: DictConfig) -> None:
    """Checks that would otherwise surface only mid-training; objects validate the rest
    (models their sizes, initializers their parameters) when they are built. Booleans
    are not numbers here (``seed=true`` is refused)."""
    check_top_level_keys(cfg)
    t = cfg.trainer
    check_trainer_keys(t)
    epochs = t.get("max_epochs")
    _check(epochs is None or (_is_int(epochs) and epochs > 0), "trainer.max_epochs",
           epochs, "a positive integer")
    _check(cfg.get("checkpoint", False) in (True, False), "checkpoint", cfg.get("checkpoint"),
           "true or false")
    clip = t.get("gradient_clip_val")
    _check(clip is None or (_is_number(clip) and clip >= 0),
           "trainer.gradient_clip_val", clip, "a number >= 0 or null")
    algo = t.get("gradient_clip_algorithm")
    _check(algo in (None, "norm", "value"), "trainer.gradient_clip_algorithm", algo,
           "norm, value or null (= norm)")
    steps = t.get("max_steps", -1)
    _check(steps is None or (_is_int(steps) and (steps == -1 or steps > 0)),
           "trainer.max_steps", steps, "-1 (no limit) or a positive integer")
    data = cfg.get("dataset") or {}
    for key in ("batch_size", "eval_batch_size"):
        size = data.get(key, 1)
        _check(size is None or (_is_int(size) and size >= 1), f"dataset.{key}", size,
               "an integer >= 1")
    lr = cfg.optimizer.get("lr")
    _check(lr is None or (_is_number(lr) and lr > 0), "optimizer.lr", lr, "a number > 0")
    wd = cfg.optimizer.get("weight_decay", 0.0)
    _check(wd is None or (_is_number(wd) and wd >= 0), "optimizer.weight_decay", wd,
           "a number >= 0")
    betas = cfg.optimizer.get("betas")
    _check(betas is None or (isinstance(betas, (list, tuple, ListConfig)) and len(betas) == 2
                             and all(_is_number(b) and 0 <= b < 1 for b in betas)),
           "optimizer.betas", betas, "two numbers in [0, 1), e.g. [0.9, 0.999]")
    _check(_is_int(cfg.seed) and 0 <= cfg.seed < 2**32, "seed", cfg.seed,
           "an integer from 0 to 2**32 - 1")
    threads = cfg.get("threads")
    _check(threads is None or (_is_int(threads) and threads >= 1), "threads", threads,
           "null (torch's default, cores // workers or cpus_per_task) or an integer >= 1")
    max_loss = cfg.get("max_loss")
    _check(max_loss is None or (_is_number(max_loss) and max_loss > 0), "max_loss",
           max_loss, "a number > 0 or null (only NaN/inf count as divergence)")
    loggers = cfg.get("logger") or {}
    entries = ({"": loggers} if "_target_" in loggers else
               {f"{k}.": v for k, v in loggers.items() if isinstance(v, DictConfig)})
    for prefix, entry in entries.items():
        logger_name = entry.get("name")
        _check(logger_name in (None, "") or (isinstance(logger_name, str)
                                             and folder_name(logger_name) == logger_name),
               f"logger.{prefix}name", logger_name, "one folder name inside the run folder: "
               "letters, digits and = , . _ + - (not a path, not . or ..)")
    target = cfg.get("target_metric")
    _check(target is None or _is_number(target), "target_metric", target,
           "a number (val accuracy to reach) or null")


def check_accelerator(trainer_cfg: DictConfig | dict[str, Any], cuda_only: bool = False
                      ) -> None:
    """A GPU run on a machine where torch sees no (or too few) GPUs fails here, naming the
    key and what is allowed, instead of deep inside Lightning or CUDA. Only
    ``accelerator: gpu|cuda`` is checked (``auto`` falls back to the CPU by itself). For
    ``gpu`` Lightning takes Apple's MPS where there is no CUDA device, unless ``cuda_only``
    (a vectorized job runs on CUDA or the CPU)."""
    accel = str(trainer_cfg.get("accelerator", "cpu"))
    if accel not in ("gpu", "cuda"):
        return
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None)
    if available == 0 and accel == "gpu" and not cuda_only and mps is not None and (
            mps.is_available()):
        return  # one MPS device; Lightning names a bad trainer.devices there itself
    if available == 0:
        raise ValueError(
            f"trainer.accelerator={accel!r} needs a CUDA GPU and torch sees none on this "
            "machine (torch.cuda.is_available() is False); allowed here: cpu or auto "
            "(trainer=cpu, or trainer.accelerator=auto)")
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, (list, tuple, ListConfig)):  # device indices
        wanted = max(int(d) for d in devices) + 1 if len(devices) else 1
    elif isinstance(devices, int) and devices > 0:
        wanted = devices
    else:  # -1 or "auto": all of them
        wanted = 1
    if wanted > available:
        raise ValueError(
            f"trainer.devices={devices!r} asks for more GPUs than torch sees on this machine "
            f"({available}); allowed: 1 to {available}, a list of indices below {available}, "
            "-1 or auto (all)")

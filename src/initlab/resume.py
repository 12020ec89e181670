"""Resuming sweeps: finished jobs are skipped, interrupted ones continue from a checkpoint.

A run folder belongs to one run. Before a job trains in a folder that already holds
something, ``check_run_folder`` makes sure it is the same run:

- a ``summary.json`` that completed or diverged with the same config: the job is skipped;
  with another config: refused (``RunFolderConflict``), the folder is left as it is;
- ``checkpoints/last.ckpt`` (used with ``checkpoint=true``): read with
  ``torch.load(weights_only=True)``; unreadable (truncated, corrupt, or holding objects
  that only unsafe loading would build): refused; written by another config (the
  ``initlab.callbacks.ConfigStamp`` stored in it): refused.

"The same config" is ``identity``: the flat study config without where the data lives
(``*.data_dir``) and whether checkpoints are written. A checkpoint may be continued by a
longer run (``trainer.max_epochs`` / ``max_steps`` may differ; the existing test of
resuming with more epochs is that workflow).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from initlab.config import study_config
from initlab.results.files import SUMMARY_FILE

# outcomes a rerun keeps: the same config and seed give them again. A failed run is run
# again: its cause is often outside the config (missing data, out of memory, a killed
# node), and a config error fails again at once. An interrupted one (SIGTERM) runs again.
FINISHED = ("completed", "diverged")
CHECKPOINT_DIR = "checkpoints"
# the checkpoint's callback-state key of initlab.callbacks.ConfigStamp (its class name)
STAMP_KEY = "ConfigStamp"
# Keys that say where things go, not what is trained.
_NOT_IDENTITY = ("checkpoint",)
# A checkpoint may be continued with a longer (or shorter) training.
_LENGTH_KEYS = ("trainer.max_epochs", "trainer.max_steps")
REMEDY = ("Use another folder (hydra.run.dir / hydra.sweep.dir), or move the folder's "
          "contents away")


class RunFolderConflict(ValueError):
    """The run folder holds another run (or an unreadable checkpoint); nothing was
    written to it."""


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """What makes two runs the same run, from a flat study config (``study_config`` or a
    stored summary's ``config``)."""
    return {k: v for k, v in config.items()
            if k not in _NOT_IDENTITY and not k.split(".")[-1] == "data_dir"}


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """JSON round trip: the form a summary or a checkpoint stores."""
    return json.loads(json.dumps(config, default=str))


def current_identity(cfg: DictConfig) -> dict[str, Any]:
    return identity(_plain(study_config(cfg)))


def config_hash(ident: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def differences(stored: dict[str, Any], now: dict[str, Any], ignore: tuple[str, ...] = (),
                limit: int = 6) -> list[str]:
    """``key: stored -> now`` for each key whose value differs (at most ``limit``)."""
    keys = sorted(k for k in set(stored) | set(now)
                  if k not in ignore and stored.get(k, "<unset>") != now.get(k, "<unset>"))
    out = [f"{k}: {stored.get(k, '<unset>')!r} -> {now.get(k, '<unset>')!r}"
           for k in keys[:limit]]
    if len(keys) > limit:
        out.append(f"... {len(keys) - limit} more")
    return out


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """``checkpoints/last.ckpt`` of an interrupted run, if there is one."""
    path = Path(output_dir) / CHECKPOINT_DIR / "last.ckpt"
    return path if path.is_file() else None


def _load_failure(exc: Exception) -> str:
    """Why a safe load failed, in a few words (torch's own message goes on to suggest an
    unsafe load, which is never the fix for a file of unknown origin)."""
    text = " ".join(str(exc).split())
    found = re.search(r"Unsupported global: GLOBAL [\w.]+", text)
    if found:
        return f"it holds Python objects a safe load refuses: {found.group(0)}"
    detail = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
    if detail:
        return f"not a readable checkpoint: {detail.group(1).strip()[:160]}"
    first = re.split(r"(?<=\.) ", text, maxsplit=1)[0]
    return f"{type(exc).__name__}: {first[:160]}" if first else type(exc).__name__


def read_stamp(path: Path) -> dict[str, Any] | None:
    """The ``ConfigStamp`` state stored in the checkpoint ``path`` (None if it has none).
    Loads it as torch does by default for local files, ``weights_only=True``: tensors and
    plain containers only; anything else is refused as unreadable."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reason: the file cannot be used
        raise RunFolderConflict(
            f"checkpoint {path} is unreadable ({_load_failure(exc)}); it is not a "
            "checkpoint this run can continue from (truncated, corrupt, or not written by "
            "initlab). Move it away (the run then starts over) or run with "
            "checkpoint=false") from None
    states = ckpt.get("callbacks") if isinstance(ckpt, dict) else None
    stamp = (states or {}).get(STAMP_KEY)
    return stamp if isinstance(stamp, dict) and isinstance(stamp.get("config"), dict) else None


def check_checkpoint(cfg: DictConfig, output_dir: str | Path) -> Path | None:
    """The checkpoint to resume from (None: start fresh), if it belongs to this config;
    raises ``RunFolderConflict`` (naming the file) otherwise."""
    path = last_checkpoint(output_dir)
    if path is None or not cfg.get("checkpoint", False):
        return None
    stamp = read_stamp(path)
    if stamp is None:
        raise RunFolderConflict(
            f"checkpoint {path} does not say which config wrote it (no initlab config "
            "stamp), so resuming from it could continue another run. Move it away (the "
            "run then starts over) or run with checkpoint=false")
    now = current_identity(cfg)
    diff = differences(stamp["config"], now, ignore=_LENGTH_KEYS)
    if diff:
        raise RunFolderConflict(
            f"run folder {Path(output_dir)} holds a checkpoint of another config "
            f"({'; '.join(diff)}); resuming would report that run as this one. {REMEDY}, "
            "or run with checkpoint=false")
    return path


def _stored_summary(output_dir: str | Path) -> dict[str, Any] | None:
    try:
        stored = json.loads((Path(output_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) else None


def finished_summary(cfg: DictConfig, output_dir: str | Path) -> dict[str, Any] | None:
    """The stored summary if ``output_dir`` already holds a completed or diverged run of
    the same config; None if the job must (re-)run (a failed, unfinished or broken one
    included)."""
    stored = _stored_summary(output_dir)
    if stored is None or stored.get("status") not in FINISHED:
        return None
    same = identity(stored.get("config") or {}) == current_identity(cfg)
    return stored if same else None


def check_run_folder(cfg: DictConfig, output_dir: str | Path) -> dict[str, Any] | None:
    """Before a job trains in ``output_dir``: its finished summary if the folder already
    holds this run (skip the job), None if the job may (re-)run there; raises
    ``RunFolderConflict`` if the folder holds another config's finished run or a
    checkpoint this run must not continue from."""
    stored = _stored_summary(output_dir)
    if stored is not None and stored.get("status") in FINISHED:
        now = current_identity(cfg)
        diff = differences(identity(stored.get("config") or {}), now)
        if not diff:
            return stored
        if differences(identity(stored.get("config") or {}), now, ignore=_LENGTH_KEYS):
            raise RunFolderConflict(
                f"run folder {Path(output_dir)} holds a {stored['status']} run of another "
                f"config ({'; '.join(diff)}); running here would overwrite it and mix its "
                f"TensorBoard files with this run's. {REMEDY}")
    check_checkpoint(cfg, output_dir)
    return None

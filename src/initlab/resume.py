"""Resuming sweeps: finished jobs are skipped, interrupted ones continue from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from initlab.config import study_config
from initlab.results.files import SUMMARY_FILE

# outcomes a rerun keeps: the same config and seed give them again. A failed run is run
# again: its cause is often outside the config (missing data, out of memory, a killed
# node), and a config error fails again at once.
FINISHED = ("completed", "diverged")
CHECKPOINT_DIR = "checkpoints"


def finished_summary(cfg: DictConfig, output_dir: str | Path) -> dict[str, Any] | None:
    """The stored summary if ``output_dir`` already holds a completed or diverged run of
    the same config; None if the job must (re-)run (a failed, unfinished or broken one
    included)."""
    path = Path(output_dir) / SUMMARY_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stored.get("status") not in FINISHED:
        return None
    same = json.loads(json.dumps(study_config(cfg), default=str)) == stored.get("config")
    return stored if same else None


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """``checkpoints/last.ckpt`` of an interrupted run, if there is one."""
    path = Path(output_dir) / CHECKPOINT_DIR / "last.ckpt"
    return path if path.is_file() else None

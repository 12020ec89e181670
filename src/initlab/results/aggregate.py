"""Sweep folder -> results.csv (one row per run) and summary.csv (mean/std over seeds)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from initlab.config import AXES
from initlab.results.files import SUMMARY_FILE, write_csv

log = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
SEED_SUMMARY_FILE = "summary.csv"
LEAD_COLUMNS = ["run", "status", *AXES]
METRICS = [
    "final_val_acc", "best_val_acc", "final_train_loss", "final_val_loss", "final_train_acc",
    "best_val_loss", "test_acc", "test_loss", "epochs_to_target", "wall_time_s",
]


def run_dirs(sweep_dir: str | Path) -> list[Path]:
    """Run folders of a sweep: every sub-folder that is a Hydra job (has ``.hydra/``)
    or holds a summary, in job order."""
    root = Path(sweep_dir)
    found = {p.parent for p in root.rglob(SUMMARY_FILE)}
    found |= {p.parent for p in root.rglob(".hydra") if p.parent != root}
    return sorted(found, key=lambda p: (len(p.parts), _job_num(p), str(p)))


def _job_num(path: Path) -> int:
    head = path.name.split("_", 1)[0]
    return int(head) if head.isdigit() else 1 << 30


def load_row(run_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    """One results row; a missing or broken summary gives an ``incomplete`` row."""
    rel = str(run_dir.relative_to(sweep_dir))
    try:
        with open(run_dir / SUMMARY_FILE, encoding="utf-8") as f:
            s = json.load(f)
    except (OSError, ValueError) as exc:
        log.warning("run folder %s has no readable %s (%s): listed as incomplete",
                    run_dir, SUMMARY_FILE, type(exc).__name__)
        return {"run": rel, "status": "incomplete", "error": f"{SUMMARY_FILE}: {exc}"}
    row: dict[str, Any] = {"run": rel}
    for key, value in s.items():
        if key in ("config", "init_diagnostics", "traceback", "history", "data", "overrides"):
            continue
        if isinstance(value, (dict, list)):
            continue
        row[key] = value
    for key, value in (s.get("config") or {}).items():
        row.setdefault(f"cfg.{key}", value)
    if row.get("status") == "running":
        row["status"] = "incomplete"
    return row


def collect(sweep_dir: str | Path) -> pd.DataFrame:
    sweep = Path(sweep_dir)
    rows = [load_row(d, sweep) for d in run_dirs(sweep)]
    frame = pd.DataFrame(rows)
    for col in LEAD_COLUMNS:
        if col not in frame:
            frame[col] = None
    lead = [c for c in LEAD_COLUMNS if c in frame]
    return frame[lead + [c for c in frame.columns if c not in lead]]


def varying_config_keys(results: pd.DataFrame) -> list[str]:
    """Config columns whose value differs between runs (the swept axes)."""
    keys = []
    for col in results.columns:
        if col.startswith("cfg.") and col != "cfg.seed":
            if results[col].astype(str).nunique(dropna=False) > 1:
                keys.append(col)
    return keys


def group_keys(results: pd.DataFrame) -> list[str]:
    """Everything that defines a configuration except the seed."""
    keys = [a for a in AXES if a != "seed" and a in results]
    mirrors = {"cfg.init.scheme", "cfg.activation.name"}  # the same as the init/activation axes
    keys += [k for k in varying_config_keys(results) if k not in mirrors]
    return keys


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of each metric over seeds, per configuration."""
    keys = group_keys(results)
    if results.empty or not keys:
        return pd.DataFrame()
    frame = results.copy()
    frame[keys] = frame[keys].astype(str)
    metrics = [m for m in METRICS if m in frame]
    grouped = frame.groupby(keys, sort=False, dropna=False)
    out = grouped.size().rename("n").to_frame()
    for status in ("completed", "diverged", "failed", "incomplete"):
        out[f"n_{status}"] = grouped["status"].apply(lambda s, st=status: int((s == st).sum()))
    for m in metrics:
        vals = grouped[m].apply(lambda s: pd.to_numeric(s, errors="coerce"))
        agg = vals.groupby(level=list(range(len(keys)))).agg(["mean", "std"])
        out[f"{m}_mean"] = agg["mean"]
        out[f"{m}_std"] = agg["std"]
    return out.reset_index()


def aggregate(sweep_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write results.csv, summary.csv (and plots/) into ``sweep_dir``."""
    sweep = Path(sweep_dir)
    results = collect(sweep)
    written = {"results": write_csv(sweep / RESULTS_FILE, results),
               "summary": write_csv(sweep / SEED_SUMMARY_FILE, summarize(results))}
    if plots:
        from initlab.results.plots import make_plots

        written["plots"] = make_plots(sweep, results)
    return written


def status_line(results: pd.DataFrame) -> str:
    counts = results["status"].value_counts() if len(results) else {}
    parts = [f"{int(counts.get(s, 0))} {s}" for s in ("completed", "diverged", "failed",
                                                        "incomplete") if counts.get(s, 0)]
    return f"{len(results)} runs: " + (", ".join(parts) if parts else "none finished")

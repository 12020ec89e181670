"""Synthetic sweep folders in the shape the pipeline writes (summary.json + history.csv +
.hydra/), so aggregation tests are fast and exact."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from initlab.pipeline import history_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def history_rows(val: Sequence[float], task: str = "classification",
                 train_loss: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """One row per epoch. Classification: ``val`` is the val accuracy; regression: the
    val loss."""
    rows = []
    for e, v in enumerate(val, start=1):
        tl = train_loss[e - 1] if train_loss is not None else 1.0 / e
        row: dict[str, Any] = {"epoch": e, "step": 10 * e, "train_loss": tl}
        if task == "classification":
            row.update(train_acc=min(1.0, v + 0.01), val_loss=1.0 - v, val_acc=v)
        else:
            row.update(val_loss=v)
        row.update(lr=0.1, time_s=0.5 * e)
        rows.append(row)
    return rows


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("")
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [",".join(cols)] + [",".join("" if r.get(c) is None else str(r.get(c))
                                         for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def write_run(
    sweep: Path,
    num: int,
    *,
    init: str = "he",
    activation: str = "relu",
    seed: int = 0,
    val: Sequence[float] = (0.5, 0.7, 0.8),
    status: str = "completed",
    task: str = "classification",
    dataset: str | None = None,
    model: str = "mlp",
    optimizer: str = "sgd",
    config: dict[str, Any] | None = None,
    target: float | None = 0.9,
    diverged_step: int | None = None,
    error: str | None = None,
    error_type: str | None = None,
    diagnostics: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    hydra: bool = True,
) -> Path:
    """One run folder ``<num>_init=...,activation=...,seed=...`` in ``sweep``."""
    dataset = dataset or ("digits" if task == "classification" else "teacher")
    cfg_over = dict(config or {})
    name = f"{num}_init={init},activation={activation},seed={seed}"
    for k, v in cfg_over.items():
        name += f",{k}={v}"
    run = sweep / name
    run.mkdir(parents=True)
    flat: dict[str, Any] = {
        "dataset.batch_size": 64, "model.depth": 3, "model.width": 64, "model.norm": "none",
        "init.scheme": init, "init.distribution": "normal",
        "activation.name": activation, "optimizer.lr": 0.1, "optimizer.momentum": 0.9,
        "trainer.max_epochs": 10, "seed": seed, "target_metric": target,
    }
    flat.update(cfg_over)
    hist = history_rows(val, task) if status != "failed" else []
    summary: dict[str, Any] = {
        "status": status, "run_name": name, "dataset": dataset, "model": model, "init": init,
        "activation": activation, "optimizer": optimizer, "seed": seed,
        "overrides": [f"init={init}", f"seed={seed}"], "config": flat, "task": task,
        "n_params": 1234,
    }
    if status == "completed":
        summary["test_loss"] = 1.0 - val[-1] if task == "classification" else val[-1]
        if task == "classification":
            summary["test_acc"] = val[-1]
    if status == "diverged":
        summary.update(diverged_step=diverged_step if diverged_step is not None else 25,
                       diverged_epoch=len(val) + 1,
                       error=error or f"training loss became nan at step 25 (epoch "
                                      f"{len(val) + 1})")
    if status == "failed":
        summary.update(error_type=error_type or "RuntimeError", error=error or "boom",
                       traceback="Traceback ...")
    summary.update(history_metrics(hist, target, task))  # as the pipeline does
    summary["history"] = "history.csv"
    if diagnostics is not None:
        summary["init_diagnostics"] = diagnostics
    summary.update(extra or {})
    summary["wall_time_s"] = 1.5
    if status != "incomplete":
        (run / "summary.json").write_text(json.dumps(summary, indent=2))
    write_history(run / "history.csv", hist)
    if hydra:
        write_hydra(run, summary)
    return run


def write_hydra(run: Path, summary: dict[str, Any]) -> None:
    """A minimal .hydra/: config.yaml (nested), hydra.yaml (runtime choices)."""
    import yaml

    d = run / ".hydra"
    d.mkdir()
    nested: dict[str, Any] = {}
    for key, value in summary["config"].items():
        parts = key.split(".")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    (d / "config.yaml").write_text(yaml.safe_dump(nested))
    choices = {k: summary[k] for k in ("dataset", "model", "init", "activation", "optimizer")}
    (d / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    (d / "overrides.yaml").write_text(yaml.safe_dump(summary["overrides"]))


@pytest.fixture
def make_run() -> Callable[..., Path]:
    return write_run


@pytest.fixture
def basic_sweep(tmp_path: Path) -> Path:
    """2 inits x 2 seeds on digits, every run completed."""
    sweep = tmp_path / "sweep"
    n = 0
    for init, base in (("xavier", 0.85), ("he", 0.9)):
        for seed in (0, 1):
            write_run(sweep, n, init=init, seed=seed,
                      val=(base - 0.2, base - 0.05 + 0.01 * seed, base + 0.01 * seed))
            n += 1
    return sweep


def is_png(path: Path) -> bool:
    import matplotlib.image as mpimg

    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and mpimg.imread(path).size > 0


@pytest.fixture
def png_ok() -> Callable[[Path], bool]:
    return is_png

"""Sweep plots: learning curves, one line per init."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from initlab.results.files import HISTORY_FILE  # noqa: E402

log = logging.getLogger(__name__)


def load_histories(sweep_dir: Path, results: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for _, row in results.iterrows():
        path = sweep_dir / str(row["run"]) / HISTORY_FILE
        try:
            h = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        if h.empty:
            continue
        for col in ("run", "init", "activation", "seed", "status"):
            h[col] = row.get(col)
        frames.append(h)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_curves(
    hist: pd.DataFrame, metric: str, path: Path, ylabel: str, logy: bool = False
) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for init, g in hist.groupby("init", sort=True):
        by_epoch = g.groupby("epoch")[metric].agg(["mean", "std"]).reset_index()
        line, = ax.plot(by_epoch["epoch"], by_epoch["mean"], marker="o", ms=3, label=str(init))
        if by_epoch["std"].notna().any():
            ax.fill_between(by_epoch["epoch"], by_epoch["mean"] - by_epoch["std"].fillna(0),
                            by_epoch["mean"] + by_epoch["std"].fillna(0),
                            color=line.get_color(), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.legend(title="init")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(sweep_dir: Path, results: pd.DataFrame) -> Path:
    out = Path(sweep_dir) / "plots"
    out.mkdir(exist_ok=True)
    hist = load_histories(Path(sweep_dir), results)
    if hist.empty:
        log.warning("no history.csv with rows in %s: no curves plotted", sweep_dir)
        return out
    if "val_acc" in hist:
        plot_curves(hist, "val_acc", out / "val_acc.png", "validation accuracy")
    if "train_loss" in hist:
        plot_curves(hist, "train_loss", out / "train_loss.png", "training loss", logy=True)
    return out

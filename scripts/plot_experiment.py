"""The figure of a named experiment (conf/experiment/), from a finished sweep folder.

    python scripts/plot_experiment.py SWEEP_DIR [-o OUT.png]

The experiment is read from the sweep's results.csv (``cfg.study.name``). The standard sweep
plots (``SWEEP_DIR/plots/``) already show most studies; this script draws what they cannot:

* ``saxe2014``: epochs to reach ``target_metric`` against depth, one line per init, at the
  best learning rate of each (depth, init) (mean over seeds; a learning rate counts when all
  its runs completed and got there); depths where none did are drawn as open markers on the
  top edge ("not reached").
* ``irnn2015``: validation MSE per epoch, one line per arm (tanh RNN, IRNN, LSTM; mean over
  seeds, thin lines per seed), with the adding-problem baseline 0.167.
* ``fixup2019``: validation accuracy per epoch, one line per arm in one panel; runs that
  diverged are marked with an ``x`` at the epoch they diverged in.
* anything else: validation accuracy (regression: loss) per epoch, one line per init and one
  panel per value of the other swept keys, mean over seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from initlab.results.files import HISTORY_FILE  # noqa: E402
from initlab.results.plots import init_colors, read_history  # noqa: E402

ADDING_BASELINE_MSE = 2.0 / 12.0  # always predicting 1.0 (initlab.data.synthetic)
METRIC_LABELS = {"val_loss": "validation MSE", "val_acc": "validation accuracy"}


def load_results(sweep: Path) -> pd.DataFrame:
    path = sweep / "results.csv"
    if not path.is_file():
        raise SystemExit(f"{path} not found: is {sweep} a finished sweep folder?")
    results = pd.read_csv(path)
    if "duplicate_of" in results:  # a run done twice counts once (see docs/results.md)
        results = results[results["duplicate_of"].isna()]
    return results


def experiment_name(results: pd.DataFrame) -> str | None:
    if "cfg.study.name" not in results:
        return None
    names = results["cfg.study.name"].dropna().astype(str).unique()
    return names[0] if len(names) == 1 else None


def best_epochs_to_target(results: pd.DataFrame, x: str, hue: str = "init",
                          over: str = "cfg.optimizer.lr") -> pd.DataFrame:
    """Per (x, hue): the mean epochs to target over the seeds at the best value of ``over``
    (the learning rate). A learning rate counts only if every one of its runs completed and
    reached the target; NaN where no learning rate did."""
    frame = results.copy()
    frame["epochs_to_target"] = pd.to_numeric(frame["epochs_to_target"], errors="coerce")
    frame["_ok"] = (frame["status"] == "completed") & frame["epochs_to_target"].notna()
    if over not in frame:
        frame[over] = np.nan
    rows = []
    for (xv, hv), group in frame.groupby([x, hue]):
        per_lr = group.groupby(over, dropna=False).agg(
            ok=("_ok", "all"), epochs=("epochs_to_target", "mean"), n=("_ok", "size"))
        per_lr = per_lr[per_lr["ok"]]
        if per_lr.empty:
            rows.append({x: xv, hue: hv, "epochs": np.nan, "lr": np.nan, "n": 0})
            continue
        best = per_lr["epochs"].idxmin()
        rows.append({x: xv, hue: hv, "epochs": per_lr.loc[best, "epochs"], "lr": best,
                     "n": int(per_lr.loc[best, "n"])})
    return pd.DataFrame(rows).sort_values([hue, x]).reset_index(drop=True)


def plot_saxe(results: pd.DataFrame, out: Path) -> pd.DataFrame:
    """Draw the figure into ``out``; returns the table it shows."""
    x = "cfg.model.depth"
    table = best_epochs_to_target(results, x)
    epochs = pd.to_numeric(results.get("cfg.trainer.max_epochs"), errors="coerce").max()
    target = pd.to_numeric(results.get("cfg.target_metric"), errors="coerce").dropna()
    top = float(epochs) + 1 if np.isfinite(epochs) else table["epochs"].max() + 1
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    colors = init_colors(list(dict.fromkeys(table["init"].astype(str))))
    for init, group in table.groupby("init"):
        line = ax.plot(group[x], group["epochs"], marker="o", label=init,
                       color=colors[str(init)])[0]
        missed = group[group["epochs"].isna()]
        if len(missed):
            ax.scatter(missed[x], [top] * len(missed), marker="o", facecolors="none",
                       edgecolors=line.get_color(), zorder=3)
    ax.axhline(top, color="grey", lw=0.6, ls=":")
    ax.text(0.01, top, "not reached", va="bottom", fontsize=8, color="grey",
            transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    depths = sorted(table[x].unique())
    ax.set_xticks(depths)
    ax.set_xticklabels([str(d) for d in depths])
    ax.set_xlabel("depth (hidden layers of the linear net)")
    goal = f"val acc {target.iloc[0]:g}" if len(target) else "target"
    ax.set_ylabel(f"epochs to {goal}\n(best learning rate)")
    ax.set_ylim(0, top + 1.5)
    ax.set_title("Deep linear nets: learning time vs depth")
    ax.legend(title="init")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return table


def _curves(sweep: Path, runs: pd.DataFrame, metric: str) -> list[tuple[np.ndarray, np.ndarray]]:
    found = []
    for run in runs["run"]:
        h = read_history(sweep / run / HISTORY_FILE, ("epoch", metric))
        if metric in h:
            found.append((h["epoch"], h[metric]))
    return found


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    length = min(len(c[0]) for c in curves)
    return curves[0][0][:length], np.nanmean([c[1][:length] for c in curves], axis=0)


ARM_LABELS = {
    # fixup2019
    "default": "no norm, default init",
    "he": "no norm, He init",
    "fixup": "no norm, Fixup",
    "bn_he": "BatchNorm, He init",
    "bn_zero_residual": "BatchNorm, zero_residual",
    # irnn2015
    "tanh_rnn": "tanh RNN",
    "irnn": "IRNN (ReLU, identity)",
    "lstm": "LSTM",
}


def plot_arms(results: pd.DataFrame, sweep: Path, out: Path, metric: str, title: str,
              baseline: tuple[float, str] | None = None) -> Path:
    """One line per arm (``cfg.study.arm``): the mean over the completed runs (thin lines:
    each run); a run that diverged is an ``x`` at the epoch it diverged in."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    arms = list(dict.fromkeys(results["cfg.study.arm"].dropna().astype(str)))
    regression = metric.endswith("loss")
    low, high = (0.0, 0.25) if regression else (0.0, 1.02)
    for i, arm in enumerate(arms):
        color = f"C{i}"
        runs = results[results["cfg.study.arm"].astype(str) == arm]
        done = runs[runs["status"] == "completed"]
        diverged = runs[runs["status"] == "diverged"]
        curves = _curves(sweep, done, metric)
        for epochs, values in curves:
            ax.plot(epochs, values, color=color, lw=0.7, alpha=0.35)
        label = f"{ARM_LABELS.get(arm, arm)}"
        if len(diverged):
            label += f" ({len(diverged)}/{len(runs)} diverged)"
        if curves:
            epochs, mean = _mean_curve(curves)
            ax.plot(epochs, mean, color=color, lw=2, label=label)
            label = None
        if len(diverged):
            # diverged_epoch counts from 1, as the history's epochs
            where = pd.to_numeric(diverged.get("diverged_epoch"), errors="coerce").fillna(1)
            y = high - 0.04 * (high - low) if regression else low + 0.04 * (high - low)
            ax.scatter(where, [y] * len(where), marker="x", s=60, color=color, zorder=4,
                       label=label)
    if baseline is not None:
        value, text = baseline
        ax.axhline(value, color="k", ls="--", lw=1)
        ax.text(0.99, value - 0.003, text, va="top", ha="right", fontsize=8,
                transform=ax.get_yaxis_transform())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(low, high)
    ax.set_xlabel("epoch")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(title)
    ax.legend(loc="lower left" if regression else "lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_irnn(results: pd.DataFrame, sweep: Path, out: Path) -> Path:
    seq = results.get("cfg.dataset.seq_len")
    title = "Adding problem"
    if seq is not None and seq.notna().any():
        title += f", T = {int(seq.dropna().iloc[0])}"
    return plot_arms(results, sweep, out, "val_loss", title,
                     baseline=(ADDING_BASELINE_MSE, "baseline: predict 1.0"))


def plot_fixup(results: pd.DataFrame, sweep: Path, out: Path) -> Path:
    depth = pd.to_numeric(results.get("cfg.model.depth"), errors="coerce").dropna()
    title = f"ResNet-{int(depth.iloc[0])}" if len(depth) else "ResNet"
    return plot_arms(results, sweep, out, "val_acc", title + ": with and without normalization")


def plot_generic(results: pd.DataFrame, sweep: Path, out: Path) -> Path:
    task = str(results["task"].dropna().iloc[0]) if results["task"].notna().any() else ""
    metric = "val_loss" if task == "regression" else "val_acc"
    cfg_keys = [c for c in results.columns if c.startswith("cfg.") and not c.startswith(
        ("cfg.init.", "cfg.seed", "cfg.study."))]
    facets = [c for c in ["activation", "model", *cfg_keys]
              if c in results and results[c].astype(str).nunique() > 1]
    groups = list(results.groupby(facets)) if facets else [((), results)]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    inits = list(dict.fromkeys(results["init"].astype(str)))
    colors = init_colors(inits)  # each scheme's colour in the sweep's own figures
    for ax, (key, frame) in zip(axes[0], groups, strict=True):
        for init in inits:
            runs = frame[frame["init"].astype(str) == init]
            # the mean over the completed runs (a diverged run's short history would cut
            # it and drag it down); diverged runs as x at the epoch they diverged in
            curves = _curves(sweep, runs[runs["status"] == "completed"], metric)
            label = init
            diverged = runs[runs["status"] == "diverged"]
            if len(diverged):
                label += f" ({len(diverged)}/{len(runs)} diverged)"
            if curves:
                epochs, mean = _mean_curve(curves)
                ax.plot(epochs, mean, color=colors[init], label=label)
                label = None
            if len(diverged):
                where = pd.to_numeric(diverged.get("diverged_epoch"),
                                      errors="coerce").fillna(1)
                low, high = ax.get_ylim()
                ax.scatter(where, [low] * len(where), marker="x", s=50, color=colors[init],
                           zorder=4, label=label, clip_on=False)
        key = key if isinstance(key, tuple) else (key,)
        ax.set_title(", ".join(f"{f.removeprefix('cfg.')}={v}" for f, v in zip(
            facets, key, strict=True)) or metric, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("_", " "))
    axes[0][0].legend(title="init")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="output PNG (default: SWEEP_DIR/plots/<experiment>.png)")
    args = parser.parse_args(argv)
    sweep = args.sweep_dir
    results = load_results(sweep)
    name = experiment_name(results) or "experiment"
    out = args.out or sweep / "plots" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    if name == "saxe2014":
        print(plot_saxe(results, out).to_string(index=False))
    elif name == "irnn2015":
        plot_irnn(results, sweep, out)
    elif name == "fixup2019":
        plot_fixup(results, sweep, out)
    else:
        plot_generic(results, sweep, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

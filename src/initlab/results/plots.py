"""Sweep plots (matplotlib, Agg backend), written into ``<sweep>/plots/``.

* ``val_acc.png`` (classification runs) / ``val_loss.png`` (regression runs) and
  ``train_loss.png``: learning curves, mean +- std over the seeds of the completed runs,
  one colour per init setting, one panel per combination of the other swept keys;
  diverged runs are drawn as thin dashed lines ending in an ``x``.
* ``heatmap.png``: mean best validation accuracy (regression: loss) of the completed
  runs over two keys, diverged / failed cells marked.
* ``epochs_to_target.png``: epochs to reach ``target_metric``, one point per run.
* ``signal_propagation.png``: per-layer statistics at init, drawn by
  ``initlab.diagnostics.plots.plot_signal_propagation`` when that function exists.

Every PNG is saved under a temporary name in the same folder, then renamed.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from initlab.results.aggregate import (  # noqa: E402
    PLOTS_DIR,
    SweepKeys,
    attributed,
    default_heatmap_axes,
    display_name,
    rank_metric,
    sweep_keys,
    task_of,
)
from initlab.results.files import HISTORY_FILE  # noqa: E402

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_acc")
MAX_FACETS = 24  # panels per figure; more are left out with a warning
MAX_SIGNAL_FIGURES = 8  # one per value of the swept keys other than activation
MAX_COLS = 4  # panels per row, unless the last facet key has 2-6 values (one row each)
DPI = 100
METRIC_LABELS = {
    "val_acc": "validation accuracy",
    "val_loss": "validation loss",
    "train_loss": "training loss",
    "best_val_acc": "best validation accuracy",
    "best_val_loss": "best validation loss",
}


# --------------------------------------------------------------------------- data


def read_history(path: Path, columns: Sequence[str] = HISTORY_COLUMNS) -> dict[str, np.ndarray]:
    """The wanted columns of one history.csv as float arrays (missing columns and empty
    cells are NaN); an empty dict for a missing, empty or unreadable file.  Plain ``csv``
    parsing: a few times faster than ``pd.read_csv`` on 20-row files."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    if len(rows) < 2:
        return {}
    header = rows[0]
    body = rows[1:]
    out: dict[str, np.ndarray] = {}
    for col in columns:
        if col not in header:
            continue
        j = header.index(col)
        vals = np.full(len(body), np.nan)
        for i, r in enumerate(body):
            if j < len(r) and r[j] != "":
                try:
                    vals[i] = float(r[j])
                except ValueError:
                    pass
        out[col] = vals
    return out if "epoch" in out else {}


def load_histories(
    sweep_dir: Path,
    results: pd.DataFrame,
    columns: Sequence[str] = HISTORY_COLUMNS,
    statuses: Sequence[str] = ("completed", "diverged"),
) -> pd.DataFrame:
    """Long table of the histories of the runs with the given statuses: ``row`` (the
    index of the run in ``results``), ``epoch`` and the wanted metric columns."""
    parts: dict[str, list[np.ndarray]] = {c: [] for c in ("row", *columns)}
    wanted = results.index[results["status"].isin(statuses)]
    for i in wanted:
        h = read_history(Path(sweep_dir) / str(results.at[i, "run"]) / HISTORY_FILE, columns)
        if not h:
            continue
        n = len(h["epoch"])
        parts["row"].append(np.full(n, i))
        for c in columns:
            parts[c].append(h.get(c, np.full(n, np.nan)))
    if not parts["row"]:
        return pd.DataFrame(columns=["row", *columns])
    return pd.DataFrame({c: np.concatenate(v) for c, v in parts.items()})


def labels(results: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """One text label per run from ``keys`` (``he`` / ``activation=relu, model.depth=3``);
    the init is shown bare."""
    if not keys:
        return pd.Series("all runs", index=results.index)
    parts = []
    for k in keys:
        vals = _text(results[k])
        parts.append(vals if k == "init" else display_name(k) + "=" + vals)
    out = parts[0]
    for p in parts[1:]:
        out = out + ", " + p
    return out


def _order(values: pd.Series) -> list[str]:
    """Distinct labels: numeric order when all are numbers, else order of appearance."""
    uniq = list(dict.fromkeys(values.dropna().astype(str)))
    try:
        return sorted(uniq, key=float)
    except ValueError:
        return uniq


def _colors(hues: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10" if len(hues) <= 10 else "tab20")
    return {h: cmap(i % cmap.N) for i, h in enumerate(hues)}


def _cap(facets: list[str], what: str) -> list[str]:
    if len(facets) > MAX_FACETS:
        log.warning("%s: %d panels, only the first %d are drawn", what, len(facets), MAX_FACETS)
        return facets[:MAX_FACETS]
    return facets


def _grid(n: int, width: float = 4.2, height: float = 3.2, ncols: int | None = None
          ) -> tuple[Any, list[Any]]:
    ncols = min(ncols or MAX_COLS, max(n, 1))
    nrows = math.ceil(max(n, 1) / ncols)
    size = (max(width * ncols, 5.5), height * nrows + 1.2)
    fig, axes = plt.subplots(nrows, ncols, figsize=size,
                             squeeze=False, layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def save_png(fig: Any, path: Path) -> Path:
    """Save ``fig`` as PNG under a temporary name in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


class _Layout:
    """Per-run hue/facet labels, their orders and colours, shared by every figure.

    Facets are ordered key by key (numbers numerically); when the last facet key has 2-6
    values, each grid row holds one value of the other keys (e.g. activation x depth)."""

    def __init__(self, results: pd.DataFrame, keys: SweepKeys) -> None:
        self.keys = keys
        known = attributed(results)
        self.hue = labels(results, [k for k in keys.hue if k in results])
        self.facet = labels(results, list(keys.facets))
        self.hues = _order_appearance(self.hue[known])
        self.facets, self.ncols = _facet_order(results[known], list(keys.facets),
                                               self.facet[known])
        self.colors = _colors(self.hues)


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "-").astype(str)


def _facet_order(runs: pd.DataFrame, keys: list[str], facet: pd.Series
                 ) -> tuple[list[str], int | None]:
    if not keys:
        return _order_appearance(facet), None
    ranks = []
    for k in keys:
        order = {v: i for i, v in enumerate(_order(_text(runs[k])))}
        ranks.append(_text(runs[k]).map(order))
    combos = pd.DataFrame({"facet": facet, **{f"r{i}": r for i, r in enumerate(ranks)}})
    combos = combos.drop_duplicates("facet").sort_values([f"r{i}" for i in range(len(keys))],
                                                         kind="stable")
    n_last = runs[keys[-1]].nunique()
    ncols = n_last if len(keys) > 1 and 2 <= n_last <= 6 else None
    return combos["facet"].tolist(), ncols


def _order_appearance(values: pd.Series) -> list[str]:
    return list(dict.fromkeys(values.astype(str)))


def _legend(fig: Any, hues: Sequence[str], colors: dict[str, Any], extra: list[Any],
            title: str) -> None:
    handles = [Line2D([], [], color=colors[h], lw=2, label=h) for h in hues] + extra
    if handles:
        fig.legend(handles=handles, title=title, loc="outside lower center", fontsize=8,
                   title_fontsize=9, ncols=min(len(handles), 5), frameon=False)


# --------------------------------------------------------------------------- figures


def plot_curves(
    hist: pd.DataFrame,
    metric: str,
    path: Path,
    layout: _Layout,
    status: pd.Series,
    ylabel: str | None = None,
    logy: bool = False,
    rows: pd.Index | None = None,
) -> Path | None:
    """Mean +- std over seeds (completed runs) of ``metric`` per epoch; one panel per
    facet, one colour per init setting; diverged runs dashed.  ``rows``: the runs this
    figure is about; init settings among them without any curve get a note that says why
    (e.g. every run diverged in its first epoch): in the panel where their curve is
    missing, and in the legend when it is missing from every panel."""
    data = hist[["row", "epoch", metric]].dropna()
    if data.empty:
        return None
    data = data.assign(hue=layout.hue.loc[data["row"]].to_numpy(),
                       facet=layout.facet.loc[data["row"]].to_numpy(),
                       status=status.loc[data["row"]].to_numpy())
    facets = _cap([f for f in layout.facets if f in set(data["facet"])], path.name)
    fig, axes = _grid(len(facets), ncols=layout.ncols)
    any_div = False

    def why(runs: pd.Index) -> str:  # e.g. "2 diverged"
        return ", ".join(f"{n} {st}" for st, n in status.loc[runs].value_counts().items())

    for ax, facet in zip(axes, facets, strict=True):
        sub = data[data["facet"] == facet]
        if rows is not None:  # init settings of this panel without a curve in it
            mine = layout.hue.loc[rows][layout.facet.loc[rows] == facet]
            missing = [h for h in layout.hues if h in set(mine) and h not in set(sub["hue"])]
            if missing:
                ax.text(0.02, 0.02, "no epoch recorded: " + "; ".join(
                    f"{h} ({why(mine.index[mine == h])})" for h in missing),
                    transform=ax.transAxes, fontsize=7, va="bottom", color="dimgrey")
        for hue in layout.hues:
            g = sub[sub["hue"] == hue]
            if g.empty:
                continue
            color = layout.colors[hue]
            done = g[g["status"] == "completed"]
            if not done.empty:
                by_epoch = done.groupby("epoch")[metric].agg(["mean", "std"])
                x, mean = by_epoch.index.to_numpy(), by_epoch["mean"].to_numpy()
                ax.plot(x, mean, color=color, lw=1.8, marker="o", ms=2.5)
                std = by_epoch["std"].fillna(0).to_numpy()
                if (std > 0).any():
                    lo, hi = mean - std, mean + std
                    if logy:
                        lo = np.where(lo > 0, lo, mean)
                    ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
            for _, run in g[g["status"] == "diverged"].groupby("row"):
                any_div = True
                ax.plot(run["epoch"], run[metric], color=color, lw=0.8, ls="--", alpha=0.8)
                ax.plot(run["epoch"].iloc[-1:], run[metric].iloc[-1:], color=color,
                        marker="x", ms=6, ls="none")
        if len(facets) > 1 or facet != "all runs":
            ax.set_title(facet, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel or METRIC_LABELS.get(metric, metric))
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    extra = [Line2D([], [], color="grey", lw=0.8, ls="--", marker="x", label="diverged run")
             ] if any_div else []
    drawn = set(data["hue"])
    if rows is not None:
        hues = layout.hue.loc[rows]
        for h in [h for h in layout.hues if h in set(hues) and h not in drawn]:
            extra.append(Line2D([], [], color=layout.colors[h], lw=0.8, ls=":",
                                label=f"{h}: no epoch recorded ({why(hues.index[hues == h])})"))
    _legend(fig, [h for h in layout.hues if h in drawn], layout.colors, extra, "init")
    fig.suptitle(f"{METRIC_LABELS.get(metric, metric)}: mean \u00b1 std over seeds",
                 fontsize=10)
    return save_png(fig, path)


def _cell_text(mean: float, counts: dict[str, int], fmt: str) -> str:
    short = {"diverged": "div", "failed": "fail", "incomplete": "inc"}
    bad = [f"{counts[s]} {short[s]}" for s in short if counts.get(s)]
    if not math.isnan(mean):
        return "\n".join([format(mean, fmt), *bad])
    if counts.get("diverged"):
        return "div"
    if counts.get("failed"):
        return "fail"
    if counts.get("incomplete"):
        return "inc"
    return ""


def plot_heatmap(
    results: pd.DataFrame,
    path: Path,
    row: str,
    col: str,
    layout: _Layout,
) -> Path | None:
    """Mean best val accuracy (regression: best val loss) of the completed runs over
    ``row`` x ``col``, one panel per combination of the other swept keys.  Cells with
    diverged/failed runs are hatched and say how many; cells without a completed run
    are grey with ``div`` / ``fail``."""
    runs = results[attributed(results)]
    if runs.empty or row not in runs or col not in runs:
        return None
    others = [k for k in layout.keys.swept if k not in (row, col) and k != "seed"]
    facet = labels(runs, others)
    order, ncols = _facet_order(runs, others, facet)
    facets = _cap(order, path.name)
    rkey, ckey = _text(runs[row]), _text(runs[col])
    rows_v, cols_v = _order(rkey), _order(ckey)
    tasks = {f: task_of(runs[facet == f]) for f in facets}
    norms: dict[str, tuple[float, float]] = {}
    cells: dict[str, tuple[np.ndarray, list[list[dict[str, int]]]]] = {}
    for f in facets:
        sub = runs[facet == f]
        metric, _ = rank_metric(tasks[f])
        vals = pd.to_numeric(sub[metric], errors="coerce").where(sub["status"] == "completed")
        grid = np.full((len(rows_v), len(cols_v)), np.nan)
        counts = [[{} for _ in cols_v] for _ in rows_v]
        for (r, c), g in sub.groupby([rkey[sub.index], ckey[sub.index]], sort=False):
            i, j = rows_v.index(r), cols_v.index(c)
            v = vals.loc[g.index]
            v = v[np.isfinite(v)]
            grid[i, j] = v.mean() if len(v) else np.nan
            counts[i][j] = g["status"].value_counts().to_dict()
        cells[f] = (grid, counts)
        finite = grid[np.isfinite(grid)]
        if finite.size:
            lo, hi = norms.get(tasks[f], (np.inf, -np.inf))
            norms[tasks[f]] = (min(lo, finite.min()), max(hi, finite.max()))
    fig, axes = _grid(len(facets), width=1.1 * len(cols_v) + 2.6,
                      height=0.55 * len(rows_v) + 1.8, ncols=ncols)
    for ax, f in zip(axes, facets, strict=True):
        grid, counts = cells[f]
        task = tasks[f]
        metric, higher = rank_metric(task)
        cmap = plt.get_cmap("viridis" if higher else "viridis_r").with_extremes(bad="#d0d0d0")
        vmin, vmax = norms.get(task, (0.0, 1.0))
        if vmin == vmax:
            pad = 0.1 * abs(vmin) or 0.1
            vmin, vmax = vmin - pad, vmax + pad
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax,
                       aspect="auto")
        fmt = ".3f" if task == "classification" else ".3g"
        for i in range(len(rows_v)):
            for j in range(len(cols_v)):
                cnt = counts[i][j]
                text = _cell_text(grid[i, j], cnt, fmt)
                bad = any(cnt.get(s) for s in ("diverged", "failed", "incomplete"))
                if bad:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//",
                                           edgecolor=(0.7, 0.1, 0.1, 0.45), lw=0))
                if text:
                    dark = np.isfinite(grid[i, j]) and (
                        (grid[i, j] - vmin) / (vmax - vmin) < 0.5) == higher
                    ax.text(j, i, text, ha="center", va="center", fontsize=8,
                            color="white" if dark else "black")
        ax.set_xticks(range(len(cols_v)), cols_v, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows_v)), rows_v, fontsize=8)
        ax.set_xlabel(display_name(col))
        ax.set_ylabel(display_name(row))
        if f != "all runs":
            ax.set_title(f, fontsize=9)
        fig.colorbar(im, ax=ax, label=METRIC_LABELS[metric], shrink=0.9)
    fig.suptitle("mean over seeds of completed runs\nhatched: cells with diverged/failed runs",
                 fontsize=9)
    return save_png(fig, path)


def plot_convergence(results: pd.DataFrame, path: Path, layout: _Layout) -> Path | None:
    """Epochs to reach ``target_metric`` per init setting, one point per run (box over the
    completed runs that reached it; diverged runs are x marks); runs that never did sit on
    the "not reached" row."""
    runs = results[results["status"].isin(["completed", "diverged"]) & attributed(results)]
    if runs.empty or "epochs_to_target" not in runs:
        return None
    target = None
    if "cfg.target_metric" in runs:
        t = pd.to_numeric(runs["cfg.target_metric"], errors="coerce").dropna().unique()
        if len(t) == 1:
            target = float(t[0])
        elif len(t) == 0:
            return None
    ept = pd.to_numeric(runs["epochs_to_target"], errors="coerce")
    top_candidates = [ept.max()]
    if "epochs_run" in runs:
        top_candidates.append(pd.to_numeric(runs["epochs_run"], errors="coerce").max())
    finite_tops = [float(v) for v in top_candidates if pd.notna(v)]
    top = max(finite_tops) + 1 if finite_tops else 1.0
    facets = _cap([f for f in layout.facets if f in set(layout.facet[runs.index])], path.name)
    fig, axes = _grid(len(facets), width=max(4.2, 0.9 * len(layout.hues) + 1.5),
                      ncols=layout.ncols)
    any_div = any_not = False
    for ax, f in zip(axes, facets, strict=True):
        sub = runs[layout.facet[runs.index] == f]
        hue = layout.hue[sub.index]
        hues = [h for h in layout.hues if h in set(hue)]
        for x, h in enumerate(hues):
            g = sub[hue == h]
            e = ept[g.index]
            div = g["status"].eq("diverged").to_numpy()
            # the box over the completed runs that reached the target, as summary.csv's
            # mean; a diverged run is drawn as an x on its own
            reached = e[~div].dropna().to_numpy(dtype=float)
            if reached.size >= 2:
                ax.boxplot([reached], positions=[x], widths=0.5, showfliers=False,
                           medianprops={"color": layout.colors[h]})
            offsets = np.linspace(-0.15, 0.15, len(g)) if len(g) > 1 else np.zeros(1)
            xs = x + offsets
            ys = e.fillna(top).to_numpy(dtype=float)
            hit = e.notna().to_numpy()
            color = layout.colors[h]
            for mask, marker, face in ((hit & ~div, "o", color), (~hit & ~div, "o", "none"),
                                       (div, "x", None)):
                if mask.any():
                    ax.plot(xs[mask], ys[mask], ls="none", marker=marker, ms=6, color=color,
                            markerfacecolor=face)
            any_div |= bool(div.any())
            any_not |= bool((~hit & ~div).any())
        ax.set_xticks(range(len(hues)), hues, rotation=30, ha="right", fontsize=8)
        ticks = list(range(1, int(top)))
        step = max(1, len(ticks) // 8)
        ax.set_yticks([*ticks[::step], top], [*map(str, ticks[::step]), "not reached"])
        ax.set_ylim(0.5, top + 0.5)
        ax.axhline(top - 0.5, color="grey", lw=0.6, ls=":")
        ax.set_ylabel("epoch")
        ax.grid(alpha=0.3, axis="y")
        if f != "all runs":
            ax.set_title(f, fontsize=9)
    task = task_of(runs)
    what = "val acc \u2265" if task == "classification" else "val loss \u2264"
    tgt = f" {target:g}" if target is not None else " target"
    extra = []
    if any_not:
        extra.append(Line2D([], [], ls="none", marker="o", markerfacecolor="none",
                            color="grey", label="not reached"))
    if any_div:
        extra.append(Line2D([], [], ls="none", marker="x", color="grey", label="diverged run"))
    if extra:
        fig.legend(handles=extra, loc="outside lower center", fontsize=8,
                   ncols=len(extra), frameon=False)
    fig.suptitle(f"epochs to {what}{tgt} (one point per run)", fontsize=10)
    return save_png(fig, path)


def _signal_propagation_function() -> Callable[..., Any] | None:
    try:
        from initlab.diagnostics.plots import plot_signal_propagation
    except ImportError as exc:
        log.warning("init diagnostics figure skipped: %s", exc)
        return None
    return plot_signal_propagation


def plot_diagnostics(frame: pd.DataFrame, path: Path, colors: dict[str, Any] | None = None,
                     hue_order: Sequence[str] | None = None) -> Path | None:
    """Hand the per-layer init diagnostics of all runs to the diagnostics package (with
    the colours and order of the other figures' init settings)."""
    fn = _signal_propagation_function()
    if fn is None:
        return None
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        fn(frame, tmp, facet="activation", hue="init", colors=colors, hue_order=hue_order)
        if not tmp.exists():
            log.warning("plot_signal_propagation wrote no file: skipped")
            return None
        os.replace(tmp, path)
    finally:
        plt.close("all")
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- entry points


def plot_all(
    sweep_dir: str | Path,
    results: pd.DataFrame,
    keys: SweepKeys | None = None,
    axes: tuple[str, str] | None = None,
    diagnostics: pd.DataFrame | None = None,
    init_histograms: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Every figure that the data allows; returns ``{name: path}`` of the PNGs written.
    A figure that fails is logged and skipped, the others are still drawn.
    ``init_histograms``: one run's activation histograms at init (``Scan.init_histograms``)."""
    sweep = Path(sweep_dir)
    out = sweep / PLOTS_DIR
    out.mkdir(exist_ok=True)
    written: dict[str, Path] = {}
    if results.empty:
        return written
    keys = keys or sweep_keys(results)
    layout = _Layout(results, keys)
    status = results["status"]

    def attempt(name: str, fn: Callable[[], Path | None]) -> None:
        t0 = time.perf_counter()
        try:
            path = fn()
        except Exception as exc:  # noqa: BLE001 - one bad figure must not stop the rest
            log.error("plot %s failed: %s: %s", name, type(exc).__name__, exc, exc_info=True)
            plt.close("all")
            return
        log.debug("plot %s: %.2f s", name, time.perf_counter() - t0)
        if path is not None:
            written[name] = path

    t0 = time.perf_counter()
    hist = load_histories(sweep, results)
    log.debug("read %d history.csv rows: %.2f s", len(hist), time.perf_counter() - t0)
    if hist.empty:
        log.warning("no history.csv with rows in %s: no learning curves", sweep)
    else:
        task = results["task"].astype(object).where(results["task"].notna(), "classification")
        reg_rows = task.eq("regression")
        known = results.index[attributed(results) & results["status"].ne("incomplete")]
        is_reg = reg_rows.loc[hist["row"]].to_numpy()
        cls_hist, reg_hist = hist[~is_reg], hist[is_reg]
        if not cls_hist.empty and "val_acc" in cls_hist:
            attempt("val_acc", lambda: plot_curves(
                cls_hist, "val_acc", out / "val_acc.png", layout, status,
                rows=known[~reg_rows[known]]))
        if not reg_hist.empty:
            attempt("val_loss", lambda: plot_curves(
                reg_hist, "val_loss", out / "val_loss.png", layout, status,
                logy=_positive(reg_hist, "val_loss"), rows=known[reg_rows[known]]))
        attempt("train_loss", lambda: plot_curves(
            hist, "train_loss", out / "train_loss.png", layout, status,
            logy=_positive(hist, "train_loss"), rows=known))
    row, col = axes or default_heatmap_axes(results)
    attempt("heatmap", lambda: plot_heatmap(results, out / "heatmap.png", row, col, layout))
    attempt("epochs_to_target",
            lambda: plot_convergence(results, out / "epochs_to_target.png", layout))
    if diagnostics is not None and not diagnostics.empty:
        try:
            figures = _diagnostics_figures(diagnostics, results, layout, out)
        except Exception as exc:  # noqa: BLE001
            log.error("init diagnostics figure skipped: %s: %s", type(exc).__name__, exc)
            figures = []
        for name, frame, path in figures:
            attempt(name, lambda frame=frame, path=path: plot_diagnostics(
                frame, path, layout.colors, layout.hues))
    if init_histograms:
        attempt("init_histograms", lambda: plot_init_histograms(
            init_histograms, out / "init_histograms.png"))
    _remove_stale(out, written)
    return written


OWN_FIGURES = ("val_acc.png", "val_loss.png", "train_loss.png", "heatmap.png",
               "epochs_to_target.png", "signal_propagation*.png", "init_histograms.png")


def plot_init_histograms(run: dict[str, Any], path: Path) -> Path:
    """Per-layer activation histograms at init of one run: the ``init_act_histograms``
    the init probe stored in its summary.json (``Scan.init_histograms``)."""
    hists = run["layers"]
    n = len(hists)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, h in zip(axes.flat, hists, strict=False):
        edges = np.asarray(h["edges"], dtype=float)
        counts = np.asarray(h["counts"], dtype=float)
        ax.bar(edges[:-1], counts / max(counts.sum(), 1.0), width=np.diff(edges), align="edge",
               color="tab:blue", alpha=0.8)
        ax.set_title(str(h["layer"]), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"activations at init, per layer: {run['run']} "
                 f"(init={run['init']}, activation={run['activation']})",
                 fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)


def _remove_stale(out: Path, written: dict[str, Path]) -> None:
    """Delete figures of ours left by an earlier aggregation that this one did not draw
    (a figure the report no longer links would describe other data)."""
    fresh = {Path(p).name for p in written.values()}
    for pattern in OWN_FIGURES:
        for path in out.glob(pattern):
            if path.name not in fresh:
                path.unlink(missing_ok=True)


def _diagnostics_figures(diagnostics: pd.DataFrame, results: pd.DataFrame, layout: _Layout,
                         out: Path) -> list[tuple[str, pd.DataFrame, Path]]:
    """(name, frame, path) of each signal-propagation figure: one per value of the swept
    keys other than activation (depth 4 and depth 32 layers must not be averaged together),
    at most ``MAX_SIGNAL_FIGURES``.  ``init`` holds the init setting label (with the swept
    init keys); the scheme alone stays in ``init_scheme``."""
    frame = diagnostics.copy()
    if "run" not in frame or "init" not in frame:
        return [("signal_propagation", frame, out / "signal_propagation.png")]
    by_run = pd.Series(layout.hue.to_numpy(), index=results["run"].to_numpy())
    frame["init_scheme"] = frame["init"]
    frame["init"] = frame["run"].map(by_run).fillna(frame["init"])
    others = [k for k in layout.keys.facets if k != "activation"]
    if not others:
        return [("signal_propagation", frame, out / "signal_propagation.png")]
    other = pd.Series(labels(results, others).to_numpy(), index=results["run"].to_numpy())
    frame["_other"] = frame["run"].map(other)
    known = results[attributed(results)]
    order, _ = _facet_order(known, others, labels(known, others))
    order = [o for o in order if o in set(frame["_other"])]
    if len(order) > MAX_SIGNAL_FIGURES:
        log.warning("signal propagation: %d figures, only the first %d are drawn", len(order),
                    MAX_SIGNAL_FIGURES)
        order = order[:MAX_SIGNAL_FIGURES]
    return [(f"signal_propagation: {o}", frame[frame["_other"] == o].drop(columns="_other"),
             out / f"signal_propagation_{i + 1}.png") for i, o in enumerate(order)]


def _positive(hist: pd.DataFrame, col: str) -> bool:
    v = hist[col].to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size) and bool((v > 0).all())


def make_plots(sweep_dir: Path, results: pd.DataFrame) -> Path:
    """Draw every figure into ``<sweep>/plots/``; returns the folder."""
    plot_all(sweep_dir, results)
    return Path(sweep_dir) / PLOTS_DIR

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

Speed (the figures are drawn at the end of every sweep): figures are plain
``matplotlib.figure.Figure`` objects on an Agg canvas (no pyplot state, nothing to close),
laid out once from margins in inches (:func:`_fit`) instead of a layout engine that
measures every tick label on each draw, and the garbage collector's full passes over the
objects that existed before plotting are skipped while drawing (:func:`_young_gc_only`).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import TICKLEFT, TICKRIGHT, Line2D
from matplotlib.markers import MarkerStyle
from matplotlib.patches import Rectangle
from matplotlib.ticker import LogFormatterSciNotation, MaxNLocator, NullLocator
from matplotlib.transforms import IdentityTransform

from initlab.heap import young_objects_only
from initlab.results.aggregate import (
    PLOTS_DIR,
    SweepKeys,
    attributed,
    default_heatmap_axes,
    display_name,
    rank_metric,
    sweep_keys,
    task_of,
)
from initlab.results.figformats import FORMATS, check_formats
from initlab.results.files import HISTORY_FILE
from initlab.results.stats import describe

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
        # a key a run does not have (the CNN's model.depth) is left out of its label
        parts.append(vals if k == "init" else
                     (display_name(k) + "=" + vals).where(results[k].notna(), ""))
    out = parts[0]
    for p in parts[1:]:
        out = out.str.cat(p, sep=", ").str.strip(", ")
    return out.where(out != "", "-")


def _order(values: pd.Series) -> list[str]:
    """Distinct labels: numeric order when all are numbers, else order of appearance."""
    uniq = list(dict.fromkeys(values.dropna().astype(str)))
    try:
        return sorted(uniq, key=float)
    except ValueError:
        return uniq


# One colour per init scheme in every figure of every sweep (tab10 order); init settings
# that are not a bare scheme name (he, init.gain=2.0) take the colours left, in order.
SCHEME_COLORS = {"random": 0, "xavier": 1, "he": 2, "lecun": 3, "orthogonal": 4,
                 "lsuv": 5, "default": 6, "zeros": 7, "identity": 8, "sparse": 9}


def init_colors(hues: Sequence[str]) -> dict[str, Any]:
    """Colour of each init setting label: a fixed tab10 colour for a bare scheme name,
    the next unused one (tab20 past ten) for anything else."""
    cmap = mpl.colormaps["tab10"]
    fixed = {h: cmap(SCHEME_COLORS[h]) for h in hues if h in SCHEME_COLORS}
    rest = [h for h in hues if h not in fixed]
    if len(hues) > 10:
        big = mpl.colormaps["tab20"]
        return {h: big(i % big.N) for i, h in enumerate(hues)}
    free = [cmap(i) for i in range(cmap.N) if i not in {SCHEME_COLORS[h] for h in fixed}]
    return {**fixed, **{h: free[i % len(free)] for i, h in enumerate(rest)}}


_colors = init_colors


def seeds_text(results: pd.DataFrame) -> str:
    """``1 seed`` / ``3 seeds`` / ``1-3 seeds``: seeds per configuration, for titles
    (a mean over one seed shows no spread)."""
    keys = [c for c in results.columns if c in ("task", "dataset", "model", "init",
                                                "activation", "optimizer")
            or (c.startswith("cfg.") and c != "cfg.seed")]
    if "seed" not in results or results.empty:
        return "1 seed"
    ids = pd.Series(["\x1f".join(map(str, row)) for row in results[keys].to_numpy()]
                    if keys else "", index=results.index)
    per = results["seed"].groupby(ids, sort=False).nunique()
    lo, hi = int(per.min()), int(per.max())
    if hi <= 1:
        return "1 seed"
    return f"{hi} seeds" if lo == hi else f"{lo}-{hi} seeds"


def _cap(facets: list[str], what: str) -> list[str]:
    if len(facets) > MAX_FACETS:
        log.warning("%s: %d panels, only the first %d are drawn", what, len(facets), MAX_FACETS)
        return facets[:MAX_FACETS]
    return facets


def _figure(size: tuple[float, float]) -> Figure:
    """A figure on its own Agg canvas: no pyplot figure manager, nothing to close."""
    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _grid(n: int, width: float = 4.2, height: float = 3.2, ncols: int | None = None
          ) -> tuple[Figure, list[Any]]:
    ncols = min(ncols or MAX_COLS, max(n, 1))
    nrows = math.ceil(max(n, 1) / ncols)
    fig = _figure((max(width * ncols, 5.5), height * nrows + 1.2))
    flat = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


# Panel titles of axes without top ticks or a y offset text (categories, fractions, log
# scales) get y=1.0: matplotlib then skips placing them above those, which measures every
# y tick label of the panel once more before it is drawn.

# Text sizes in inches for the margins of _fit; 10 pt is matplotlib's default label size.
LINE_IN = 10 / 72 * 1.3  # one line of 10 pt text with its leading
LABEL_IN = 0.2 + LINE_IN  # tick, pads, a 10 pt axis label and the edge beside tick labels
_ruler: RendererAgg | None = None


def _text_width(texts: Sequence[str], size: float | str) -> float:
    """Width in inches of the widest of ``texts`` at ``size`` points (Agg's font metrics;
    nothing is drawn)."""
    global _ruler
    if not texts:
        return 0.0
    if _ruler is None:
        _ruler = RendererAgg(1, 1, DPI)  # at the figures' dpi: the same font hinting
    prop = FontProperties(size=size)
    return max(_ruler.get_text_width_height_descent(str(t), prop, ismath=False)[0]
               for t in texts) / DPI


def ytick_label_width(ax: Any) -> float:
    """Width in inches of the widest y tick label that ``ax`` will draw (major and minor,
    in view), from its locators and formatters: no Tick objects are made.  Call it once
    the data is plotted."""
    axis = ax.yaxis
    lo, hi = sorted(axis.get_view_interval())
    pad = 1e-9 * max(abs(lo), abs(hi), 1e-300)
    texts = []
    for locs, fmt in ((axis.get_majorticklocs(), axis.get_major_formatter()),
                      (axis.get_minorticklocs(), axis.get_minor_formatter())):
        locs = np.asarray(locs, dtype=float)
        labels = fmt.format_ticks(locs) if locs.size else []
        texts += [t for v, t in zip(locs, labels, strict=True) if lo - pad <= v <= hi + pad]
    return _text_width([t for t in texts if t], mpl.rcParams["ytick.labelsize"])


def _legend_height(fig: Figure) -> float:
    """Inches taken by the figure's legends below the panels (8 pt entries)."""
    total = 0.0
    for leg in fig.legends:
        n = len(leg.legend_handles)
        title = leg.get_title().get_text()
        total += math.ceil(n / max(leg._ncols, 1)) * 0.18 + (0.2 if title else 0.0) + 0.04
    return total


def _fit(fig: Figure, *, left: float | None = None, right: float = 0.15,
         top: float = 0.0, bottom: float = 0.2 + 0.38, wspace: float | None = None,
         hspace: float | None = None) -> None:
    """Place the subplot grid from margins in inches, computed once from what is around
    the panels (tick labels and axis labels: ``left`` / ``bottom``, ``left`` by default
    from the y tick labels the panels will draw; panel titles; the suptitle's lines; the
    legends below), instead of a layout engine that measures every tick label on every
    draw.  ``wspace`` / ``hspace``: inches between panels (default:
    room for the y labels / for the x labels and a panel title)."""
    axes = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
    nrows, ncols = axes[0].get_subplotspec().get_gridspec().get_geometry()
    w, h = fig.get_size_inches()
    if left is None:
        left = max(ytick_label_width(ax) for ax in axes if ax.get_visible()) + LABEL_IN
    title_in = 0.27 if any(ax.get_title() for ax in axes if ax.get_visible()) else 0.0
    sup = fig._suptitle
    lines = sup.get_text().count("\n") + 1 if sup is not None and sup.get_text() else 0
    top += 0.1 + lines * 0.2 + title_in
    legend = _legend_height(fig)
    bottom += legend
    wspace = left if wspace is None else wspace
    hspace = bottom - legend + title_in if hspace is None else hspace
    axes_w = max((w - left - right - (ncols - 1) * wspace) / ncols, 0.5)
    axes_h = max((h - top - bottom - (nrows - 1) * hspace) / nrows, 0.5)
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h,
                        bottom=bottom / h, wspace=wspace / axes_w, hspace=hspace / axes_h)


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075"
                                                 "\u2076\u2077\u2078\u2079")


class PlainLogFormatter(LogFormatterSciNotation):
    """Log-axis tick labels as plain text with Unicode superscripts (10\u207b\u00b3,
    2\u00d710\u207b\u00b9) instead of matplotlib's mathtext (10^{-3}): each figure's
    renderer parses every mathtext label anew (pyparsing, several ms per label), which was
    a large part of drawing a log-scale figure.  Same ticks, same values shown."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        text = super().__call__(x, pos)
        m = re.fullmatch(r"\$\\mathdefault\{(.*)\}\$", text)
        if m is None:
            return text
        body = re.sub(r"\^\{(-?\d+)\}", lambda e: e.group(1).translate(_SUPERSCRIPT),
                      m.group(1))
        body = body.replace("\\times", "\u00d7")
        return "\u2212" + body[1:] if body.startswith("-") else body


def plain_log_scale(ax: Any, which: str = "y") -> None:
    """Log scale on the ``which`` (``x`` / ``y``) axis of ``ax`` with
    :class:`PlainLogFormatter` labels (major: the decades; minor: labelled by matplotlib's
    rule, when there are few decades)."""
    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def light_minor_log_ticks(ax: Any, grid_alpha: float | None = None) -> bool:
    """Draw the unlabelled minor ticks of ``ax``'s log y axis (and, with ``grid_alpha``,
    their grid lines) as two collections instead of one matplotlib Tick per minor tick
    (each a bundle of lines and texts: ~40 per panel, most of a log figure's drawing
    time).  Same marks, same places, same style.  Call it once the data is plotted: the y
    limits are fixed here.  Minor ticks that carry labels (few decades) are left as they
    are; returns whether the ticks were replaced."""
    axis = ax.yaxis
    lo, hi = sorted(ax.get_ylim())  # autoscales now
    every = np.asarray(axis.get_minorticklocs(), dtype=float)  # majors already removed
    labels = axis.get_minor_formatter().format_ticks(every)
    inside = (every >= lo * (1 - 1e-9)) & (every <= hi * (1 + 1e-9))
    if any(t for t, keep in zip(labels, inside, strict=True) if keep):
        return False
    locs = every[inside]
    ax.set_ylim(ax.get_ylim())  # the marks below are placed for these limits
    axis.set_minor_locator(NullLocator())
    if not locs.size:
        return True
    rc = mpl.rcParams
    trans = ax.get_yaxis_transform()  # x in axes fractions, y in data
    if grid_alpha is not None:
        grid = LineCollection([[(0, y), (1, y)] for y in locs], transform=trans,
                              colors=rc["grid.color"], linewidths=rc["grid.linewidth"],
                              linestyles=rc["grid.linestyle"], alpha=grid_alpha,
                              zorder=1.5 if rc["axes.axisbelow"] == "line" else 0.5)
        ax.add_collection(grid, autolim=False)
    marker = MarkerStyle(TICKLEFT if rc["ytick.direction"] == "out" else TICKRIGHT)
    mark = PathCollection([marker.get_path().transformed(marker.get_transform())],
                          sizes=[rc["ytick.minor.size"] ** 2],
                          offsets=np.column_stack([np.zeros(locs.size), locs]),
                          offset_transform=trans, transform=IdentityTransform(),
                          facecolors="none",
                          edgecolors=rc["ytick.color"], linewidths=rc["ytick.minor.width"],
                          clip_on=False, zorder=2.5)
    ax.add_collection(mark, autolim=False)
    return True


def save_options(fmt: str) -> dict[str, Any]:
    """``savefig`` options per format: PNGs with zlib level 1 (a third faster to encode
    than the default 6, ~10 % larger files of a few tens of kB)."""
    return {"pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}


_extra_formats: tuple[str, ...] = ()  # set by plot_all: also write these next to each PNG


def save_png(fig: Any, path: Path) -> Path:
    """Save ``fig`` as PNG (and in the extra formats plot_all was asked for: PDF/SVG,
    same name) under a temporary name in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for fmt in ("png", *_extra_formats):
        target = path.with_suffix(f".{fmt}")
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.{fmt}")
        try:
            fig.savefig(tmp, format=fmt, dpi=DPI, **save_options(fmt))
            os.replace(tmp, target)
        finally:
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
        self.runs = results[known]
        self.note = ""  # what the runs drawn are, for titles ("each init at its best lr")


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
        _bottom_legend(fig, handles, title, ncols=min(len(handles), 5))


def _bottom_legend(fig: Figure, handles: list[Any], title: str | None, ncols: int) -> None:
    """A frameless legend centred below the panels (:func:`_fit` leaves room for it)."""
    fig.legend(handles=handles, title=title, loc="lower center", bbox_to_anchor=(0.5, 0.0),
               fontsize=8, title_fontsize=9, ncols=ncols, frameon=False)


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
            plain_log_scale(ax, "y")
            light_minor_log_ticks(ax)
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
    seeds = seeds_text(layout.runs)
    spread = "one run per curve" if seeds == "1 seed" else f"mean \u00b1 std over {seeds}"
    note = f"\n{layout.note}" if layout.note else ""
    fig.suptitle(f"{METRIC_LABELS.get(metric, metric)}: {spread}{note}", fontsize=10)
    _fit(fig)
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
    ``row`` x ``col``, one panel per combination of the other swept keys, each cell
    annotated with its value (4 decimals: close inits stay told apart; the best of each
    column in bold).  Cells with diverged/failed runs are hatched and say how many (the
    title mentions hatching only when a cell is); cells without a completed run are grey
    with ``div`` / ``fail``."""
    runs = results[attributed(results)]
    if runs.empty or row not in runs or col not in runs:
        return None
    others = [k for k in layout.keys.swept if k not in (row, col) and k != "seed"]
    facet = labels(runs, others)
    order, ncols = _facet_order(runs, others, facet)
    facets = _cap(order, path.name)
    rkey, ckey = _text(runs[row]), _text(runs[col])
    rows_v, cols_v = _order(rkey), _order(ckey)
    if row == "init":  # the inits in the order of the other figures
        rows_v = sorted(rows_v, key=lambda v: layout.hues.index(v) if v in layout.hues
                        else len(layout.hues))
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
    hatched = False
    for ax, f in zip(axes, facets, strict=True):
        grid, counts = cells[f]
        task = tasks[f]
        metric, higher = rank_metric(task)
        # the best cell of each column in bold: close values stay told apart
        best_in_col = {}
        for j in range(len(cols_v)):
            col_vals = grid[:, j]
            if np.isfinite(col_vals).any():
                best_in_col[j] = int(np.nanargmax(col_vals) if higher else
                                     np.nanargmin(col_vals))
        cmap = mpl.colormaps["viridis" if higher else "viridis_r"].with_extremes(
            bad="#d0d0d0")
        vmin, vmax = norms.get(task, (0.0, 1.0))
        if vmin == vmax:
            pad = 0.1 * abs(vmin) or 0.1
            vmin, vmax = vmin - pad, vmax + pad
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax,
                       aspect="auto")
        fmt = ".4f" if task == "classification" else ".4g"
        for i in range(len(rows_v)):
            for j in range(len(cols_v)):
                cnt = counts[i][j]
                text = _cell_text(grid[i, j], cnt, fmt)
                bad = any(cnt.get(s) for s in ("diverged", "failed", "incomplete"))
                if bad:
                    hatched = True
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//",
                                           edgecolor=(0.7, 0.1, 0.1, 0.45), lw=0))
                if text:
                    dark = np.isfinite(grid[i, j]) and (
                        (grid[i, j] - vmin) / (vmax - vmin) < 0.5) == higher
                    ax.text(j, i, text, ha="center", va="center", fontsize=8,
                            color="white" if dark else "black",
                            fontweight="bold" if best_in_col.get(j) == i else "normal")
        ax.set_xticks(range(len(cols_v)), cols_v, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows_v)), rows_v, fontsize=8)
        ax.set_xlabel(display_name(col))
        ax.set_ylabel(display_name(row))
        if f != "all runs":
            ax.set_title(f, y=1.0, fontsize=9)
        fig.colorbar(im, ax=ax, label=METRIC_LABELS[metric], shrink=0.9)
    seeds = seeds_text(runs)
    head = ("one completed run per cell" if seeds == "1 seed"
            else f"mean over the completed runs ({seeds})")
    notes = ["bold: best in its column"]
    if hatched:
        notes.append("hatched: cells with diverged/failed/incomplete runs")
    if layout.note:
        notes.insert(0, layout.note)
    fig.suptitle(f"{head}\n{'; '.join(notes)}", fontsize=9)
    left = _text_width(rows_v, 8) + LABEL_IN
    bottom = 0.5 * _text_width(cols_v, 8) + 0.1 + LABEL_IN  # labels turned by 30 degrees
    _fit(fig, left=left, bottom=bottom, right=0.7, wspace=left + 0.7)  # + colour bar
    return save_png(fig, path)


def plot_convergence(results: pd.DataFrame, path: Path, layout: _Layout) -> Path | None:
    """Epochs to reach ``target_metric`` per init setting: the mean over the completed
    runs that reached it with its 95 % CI (a diamond with error bars), and each run as a
    small point beside it (diverged runs x marks); runs that never did sit on the "not
    reached" row."""
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
    any_div = any_not = any_mean = False
    for ax, f in zip(axes, facets, strict=True):
        sub = runs[layout.facet[runs.index] == f]
        hue = layout.hue[sub.index]
        hues = [h for h in layout.hues if h in set(hue)]
        for x, h in enumerate(hues):
            g = sub[hue == h]
            e = ept[g.index]
            div = g["status"].eq("diverged").to_numpy()
            # the mean over the completed runs that reached the target (summary.csv's)
            # with its 95 % CI; each run a small point beside it, a diverged run an x
            reached = e[~div].dropna().to_numpy(dtype=float)
            if reached.size:
                d = describe(reached)
                ax.errorbar([x - 0.22], [d.mean], yerr=[[d.ci95 if d.n >= 2 else 0]] * 2,
                            fmt="D", ms=7, color=layout.colors[h], capsize=4, lw=1.5,
                            zorder=3)
                any_mean = True
            offsets = np.linspace(-0.05, 0.2, len(g)) if len(g) > 1 else np.full(1, 0.08)
            xs = x + offsets
            ys = e.fillna(top).to_numpy(dtype=float)
            hit = e.notna().to_numpy()
            color = layout.colors[h]
            for mask, marker, face in ((hit & ~div, "o", color), (~hit & ~div, "o", "none"),
                                       (div, "x", None)):
                if mask.any():
                    ax.plot(xs[mask], ys[mask], ls="none", marker=marker, ms=4, color=color,
                            markerfacecolor=face, alpha=0.8)
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
            ax.set_title(f, y=1.0, fontsize=9)
    task = task_of(runs)
    what = "val acc \u2265" if task == "classification" else "val loss \u2264"
    tgt = f" {target:g}" if target is not None else " target"
    extra = []
    seeds = seeds_text(runs)
    if any_mean:
        extra.append(Line2D([], [], ls="none", marker="D", color="grey",
                            label="mean of the runs that reached it" +
                            ("" if seeds == "1 seed" else " \u00b1 95 % CI")))
        extra.append(Line2D([], [], ls="none", marker="o", ms=4, color="grey",
                            label="one run"))
    if any_not:
        extra.append(Line2D([], [], ls="none", marker="o", markerfacecolor="none",
                            color="grey", label="not reached"))
    if any_div:
        extra.append(Line2D([], [], ls="none", marker="x", color="grey", label="diverged run"))
    if extra:
        _bottom_legend(fig, extra, None, ncols=len(extra))
    note = f"\n{layout.note}" if layout.note else ""
    fig.suptitle(f"epochs to {what}{tgt} ({seeds} per configuration){note}", fontsize=10)
    left = _text_width(["not reached", str(int(top))], 10) + LABEL_IN
    _fit(fig, left=left, bottom=0.5 * _text_width(layout.hues, 8) + 0.25)
    return save_png(fig, path)


def _signal_propagation_function() -> Callable[..., Any] | None:
    try:
        from initlab.diagnostics.plots import plot_signal_propagation
    except ImportError as exc:
        log.warning("init diagnostics figure skipped: %s", exc)
        return None
    return plot_signal_propagation


def plot_diagnostics(frame: pd.DataFrame, path: Path, colors: dict[str, Any] | None = None,
                     hue_order: Sequence[str] | None = None, title: str | None = None
                     ) -> Path | None:
    """Hand the per-layer init diagnostics of all runs to the diagnostics package (with
    the colours and order of the other figures' init settings)."""
    fn = _signal_propagation_function()
    if fn is None:
        return None
    for fmt in ("png", *_extra_formats):
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.{fmt}")
        try:
            extra = {"title": title} if title else {}
            fn(frame, tmp, facet="activation", hue="init", colors=colors, hue_order=hue_order,
               **extra)
            if not tmp.exists():
                log.warning("plot_signal_propagation wrote no file: skipped")
                return None
            os.replace(tmp, path.with_suffix(f".{fmt}"))
        finally:
            tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- entry points


def plot_all(
    sweep_dir: str | Path,
    results: pd.DataFrame,
    keys: SweepKeys | None = None,
    axes: tuple[str, str] | None = None,
    diagnostics: pd.DataFrame | None = None,
    init_histograms: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    formats: Sequence[str] | None = None,
    summary: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Every figure that the data allows; returns ``{name: path}`` of the PNGs written.
    A figure that fails is logged and skipped, the others are still drawn.
    ``init_histograms``: activation histograms at init of one run or of the first run of
    each init (``Scan.init_histogram_runs``).  ``formats``: e.g. ``["png", "pdf"]``: each
    figure also as PDF/SVG next to its PNG (the PNG is always written: the report links
    it).  ``summary`` (summary.csv): with swept optimizer keys, the learning curves, the
    heatmap and epochs to target show each init at its own best setting (``at_best``);
    every setting is in ``lr_sensitivity.png``."""
    global _extra_formats
    fmts = check_formats(formats)
    _extra_formats = fmts[1:]
    try:
        with young_objects_only():
            return _plot_all(sweep_dir, results, keys, axes, diagnostics, init_histograms,
                             summary)
    finally:
        _extra_formats = ()


def _plot_all(
    sweep_dir: str | Path,
    results: pd.DataFrame,
    keys: SweepKeys | None,
    axes: tuple[str, str] | None,
    diagnostics: pd.DataFrame | None,
    init_histograms: dict[str, Any] | Sequence[dict[str, Any]] | None,
    summary: pd.DataFrame | None,
) -> dict[str, Path]:
    from initlab.results.aggregate import runs_at_best, tuned_keys

    sweep = Path(sweep_dir)
    out = sweep / PLOTS_DIR
    out.mkdir(exist_ok=True)
    written: dict[str, Path] = {}
    if results.empty:
        return written
    keys = keys or sweep_keys(results)
    layout = _Layout(results, keys)
    status = results["status"]
    tuned = [k for k in tuned_keys(keys) if k in results]
    all_runs = results
    if tuned and summary is not None and "at_best" in summary:
        # the fair reading: each init at its own best lr (one panel per lr would
        # compare the inits at an lr that suits some of them)
        results = runs_at_best(results, summary, keys)
        best_keys = replace(keys, swept=tuple(k for k in keys.swept if k not in tuned))
        best_layout = _Layout(results, best_keys)
        best_layout.colors = {**best_layout.colors, **layout.colors}
        best_layout.hues = [h for h in layout.hues if h in best_layout.hues] + [
            h for h in best_layout.hues if h not in layout.hues]  # the sweep's order
        best_layout.note = ("each init at its own best "
                            + ", ".join(display_name(k) for k in tuned))
        layout, full_layout = best_layout, layout
    else:
        full_layout = layout

    def attempt(name: str, fn: Callable[[], Path | None]) -> None:
        t0 = time.perf_counter()
        try:
            path = fn()
        except Exception as exc:  # noqa: BLE001 - one bad figure must not stop the rest
            log.error("plot %s failed: %s: %s", name, type(exc).__name__, exc, exc_info=True)
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
    row, col = axes or default_heatmap_axes(all_runs)
    attempt("heatmap", lambda: plot_heatmap(results, out / "heatmap.png", row, col, layout))
    attempt("epochs_to_target",
            lambda: plot_convergence(results, out / "epochs_to_target.png", layout))
    layout = full_layout
    results = all_runs
    if diagnostics is not None and not diagnostics.empty:
        try:
            figures = _diagnostics_figures(diagnostics, results, layout, out)
        except Exception as exc:  # noqa: BLE001
            log.error("init diagnostics figure skipped: %s: %s", type(exc).__name__, exc)
            figures = []
        for name, frame, path in figures:
            _, _, detail = name.partition(": ")
            title = f"Signal propagation at initialization, {detail}" if detail else None
            attempt(name, lambda frame=frame, path=path, title=title: plot_diagnostics(
                frame, path, layout.colors, layout.hues, title))
    if init_histograms:
        attempt("init_histograms", lambda: plot_init_histograms(
            init_histograms, out / "init_histograms.png", layout.colors))
    for i, key in enumerate(tuned):
        name = "lr_sensitivity" if i == 0 else f"lr_sensitivity: {display_name(key)}"
        fname = "lr_sensitivity.png" if i == 0 else f"lr_sensitivity_{i + 1}.png"
        attempt(name, lambda key=key, fname=fname: plot_lr_sensitivity(
            results, out / fname, layout, key))
    _remove_stale(out, written)
    return written


OWN_FIGURES = ("val_acc", "val_loss", "train_loss", "heatmap", "epochs_to_target",
               "signal_propagation*", "init_histograms", "lr_sensitivity*")


def plot_init_histograms(runs: dict[str, Any] | Sequence[dict[str, Any]], path: Path,
                         colors: dict[str, Any] | None = None) -> Path:
    """Per-layer activation histograms at init (``init_act_histograms`` in summary.json),
    one panel per layer, one outline per init: the first run of each init with the same
    activation, model and layers as the first run (``Scan.init_histogram_runs``)."""
    runs = [runs] if isinstance(runs, dict) else list(runs)
    ref = runs[0]
    names = [str(h["layer"]) for h in ref["layers"]]
    same = [r for r in runs if r.get("activation") == ref.get("activation")
            and r.get("model") == ref.get("model")
            and [str(h["layer"]) for h in r["layers"]] == names]
    inits = list(dict.fromkeys(str(r.get("init")) for r in same))
    colors = {**init_colors(inits), **(colors or {})}
    n = len(names)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig = _figure((3.3 * cols, 2.6 * rows + 0.9))
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, (ax, name) in enumerate(zip(axes.flat, names, strict=False)):
        for r in same:
            h = r["layers"][k]
            edges = np.asarray(h["edges"], dtype=float)
            counts = np.asarray(h["counts"], dtype=float)
            frac = counts / max(counts.sum(), 1.0)
            init = str(r.get("init"))
            ax.stairs(frac, edges, color=colors.get(init), lw=1.4, label=init,
                      fill=len(same) == 1, alpha=0.8)
        ax.set_title(f"layer {k}: {name}", y=1.0, fontsize=8)
        ax.tick_params(labelsize=7)
        if k >= n - cols:
            ax.set_xlabel("activation value", fontsize=8)
        if k % cols == 0:
            ax.set_ylabel("fraction of values", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles = [Line2D([], [], color=colors.get(i), lw=2, label=i) for i in inits]
    _bottom_legend(fig, handles, "init", ncols=len(inits))
    what = f"activation={ref.get('activation')}" if ref.get("activation") else ""
    model = f"model={ref.get('model')}" if ref.get("model") else ""
    detail = ", ".join(x for x in (model, what) if x)
    fig.suptitle("Activations at initialization, per layer" + (f" ({detail})" if detail
                                                              else "")
                 + "\none seed per init, one probe batch", fontsize=9)
    _fit(fig, left=0.45 + 0.15, bottom=0.28 + 0.15, wspace=0.45, hspace=0.3 + 0.15)
    return save_png(fig, path)


def plot_lr_sensitivity(summary_runs: pd.DataFrame, path: Path, layout: _Layout,
                        x_key: str) -> Path | None:
    """The lr-sensitivity "basin": the ranking metric against ``x_key`` (a swept optimizer
    key), one line per init setting (mean over the completed seeds, band = 95 % CI), log x
    when every value is positive, one panel per value of the other swept keys; an ``x`` on
    the bottom edge where runs diverged (with how many), a star at each init's best."""
    runs = summary_runs[attributed(summary_runs)]
    if runs.empty or x_key not in runs:
        return None
    others = [k for k in layout.keys.facets if k != x_key]
    facet = labels(runs, others)
    order, ncols = _facet_order(runs, others, facet)
    facets = _cap(order, path.name)
    xs_all = pd.to_numeric(runs[x_key], errors="coerce")
    if xs_all.isna().all():
        return None
    logx = bool((xs_all.dropna() > 0).all())
    fig, axes = _grid(len(facets), ncols=ncols)
    any_div = False
    task = task_of(runs)
    metric, higher = rank_metric(task)
    for ax, f in zip(axes, facets, strict=True):
        sub = runs[facet == f]
        hue = layout.hue[sub.index]
        for h in [h for h in layout.hues if h in set(hue)]:
            g = sub[hue == h]
            x = pd.to_numeric(g[x_key], errors="coerce")
            vals = pd.to_numeric(g[metric], errors="coerce").where(g["status"] == "completed")
            pts = []
            for xv in sorted(x.dropna().unique()):
                sel = x == xv
                d = describe(vals[sel].dropna())
                n_div = int(g.loc[sel, "status"].eq("diverged").sum())
                pts.append((xv, d.mean, d.ci95 if d.n >= 2 else 0.0, n_div))
            arr = np.array([p[:3] for p in pts], dtype=float)
            color = layout.colors[h]
            ok = np.isfinite(arr[:, 1])
            ax.plot(arr[ok, 0], arr[ok, 1], color=color, lw=1.8, marker="o", ms=4, label=h)
            ci = np.nan_to_num(arr[:, 2])
            if (ci[ok] > 0).any():
                lo, hi = arr[ok, 1] - ci[ok], arr[ok, 1] + ci[ok]
                if metric.endswith("_acc"):  # an accuracy's CI stops at 0 and 1
                    lo, hi = np.clip(lo, 0, 1), np.clip(hi, 0, 1)
                ax.fill_between(arr[ok, 0], lo, hi, color=color, alpha=0.18, lw=0)
            if ok.any():
                b = int(np.nanargmax(arr[:, 1]) if higher else np.nanargmin(arr[:, 1]))
                ax.plot([arr[b, 0]], [arr[b, 1]], marker="*", ms=13, color=color,
                        markeredgecolor="black", markeredgewidth=0.6, ls="none", zorder=4)
            for xv, _, _, n_div in pts:
                if n_div:
                    any_div = True
                    ax.plot([xv], [0.0], transform=ax.get_xaxis_transform(), marker="x",
                            ms=8, mew=2, color=color, clip_on=False, ls="none", zorder=5)
                    ax.annotate(str(n_div), (xv, 0.0), xycoords=("data", "axes fraction"),
                                xytext=(4, 3), textcoords="offset points", fontsize=7,
                                color=color)
        if logx:
            ax.set_xscale("log")
        ticks = sorted(xs_all.dropna().unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel(display_name(x_key))
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
        if f != "all runs":
            ax.set_title(f, fontsize=9)
    extra = [Line2D([], [], ls="none", marker="*", ms=11, color="grey",
                    markeredgecolor="black", label="best value per init")]
    if any_div:
        extra.append(Line2D([], [], ls="none", marker="x", mew=2, color="grey",
                            label="diverged runs (count)"))
    _legend(fig, [h for h in layout.hues], layout.colors, extra, "init")
    seeds = seeds_text(runs)
    spread = ("1 seed: no band" if seeds == "1 seed"
              else f"mean over completed seeds ({seeds}), band 95 % CI")
    fig.suptitle(f"{METRIC_LABELS.get(metric, metric)} against {display_name(x_key)}: "
                 f"{spread}", fontsize=10)
    _fit(fig)
    return save_png(fig, path)


def _remove_stale(out: Path, written: dict[str, Path]) -> None:
    """Delete figures of ours left by an earlier aggregation that this one did not draw
    (a figure the report no longer links would describe other data)."""
    fresh = {Path(p).with_suffix(f".{fmt}").name for p in written.values()
             for fmt in ("png", *_extra_formats)}
    for pattern in OWN_FIGURES:
        for fmt in FORMATS:
            for path in out.glob(f"{pattern}.{fmt}"):
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
    # the optimizer's keys do not change the net at init: their runs are pooled
    from initlab.results.aggregate import tuned_keys

    tuned = set(tuned_keys(layout.keys))
    others = [k for k in layout.keys.facets if k != "activation" and k not in tuned]
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

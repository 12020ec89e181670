"""Signal-propagation figures at initialization.

Figures are drawn on ``matplotlib.figure.Figure`` objects (Agg canvas, no pyplot), so
plotting neither needs a display nor changes the global matplotlib backend.  The signal
propagation figure (drawn at the end of every sweep) is laid out once from margins in
inches rather than by a layout engine, which would measure every tick label of its
log axes on each draw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import MaxNLocator
from torch import nn

from initlab.diagnostics.probe import ForwardRecorder, preserved_state

HIST_VALUES = 200_000  # activation values per layer in a histogram


def _text_width(texts: Sequence[str], size: float | str = "medium") -> float:
    """Width in inches of the widest of ``texts`` (Agg's font metrics, nothing drawn)."""
    ruler = RendererAgg(1, 1, 100)  # the figures' dpi: the same font hinting
    prop = FontProperties(size=size)
    return max((ruler.get_text_width_height_descent(str(t), prop, ismath=False)[0]
                for t in texts), default=0.0) / 100


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # PNG: zlib level 1, a third faster to encode than the default for ~10 % more bytes
    png = path.suffix.lower() == ".png"
    fig.savefig(path, dpi=100, **({"pil_kwargs": {"compress_level": 1}} if png else {}))
    return path


def plot_signal_propagation(
    records: pd.DataFrame,
    path: str | Path,
    facet: str = "activation",
    hue: str = "init",
    colors: Mapping[str, Any] | None = None,
    hue_order: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Glorot & Bengio (2010) picture: per-layer activation std (top row) and gradient std
    (bottom row) at init against the layer index, log y, one line per ``hue`` value (init
    scheme), one column per ``facet`` value (activation).

    ``records`` is a long table of ``probe`` rows with extra ``hue`` / ``facet`` columns;
    rows that share (facet, hue, index), e.g. several seeds, are averaged.  Missing
    ``facet`` / ``hue`` columns give a single column / a single line. ``colors`` and
    ``hue_order`` (e.g. those of the sweep's other figures) fix each hue's colour and the
    legend order; hues they do not name follow, sorted, in matplotlib's default cycle.
    ``title``: the figure's title (default "Signal propagation at initialization").
    """
    return _save(signal_propagation_figure(records, facet, hue, colors, hue_order, title),
                 path)


def signal_propagation_figure(
    records: pd.DataFrame,
    facet: str = "activation",
    hue: str = "init",
    colors: Mapping[str, Any] | None = None,
    hue_order: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """The figure of ``plot_signal_propagation``, unsaved."""
    # plain-text log labels and light minor ticks: the same figure, cheaper to draw
    from initlab.results.plots import (
        LABEL_IN,
        light_minor_log_ticks,
        plain_log_scale,
        ytick_label_width,
    )

    df = records.copy()
    facet_col = facet if facet in df.columns else None
    hue_col = hue if hue in df.columns else None
    df["_facet"] = df[facet_col].astype(str) if facet_col else "all"
    df["_hue"] = df[hue_col].astype(str) if hue_col else "probe"
    mean = df.groupby(["_facet", "_hue", "index"])[["act_std", "grad_std"]].mean().reset_index()
    facets, present = sorted(mean["_facet"].unique()), set(mean["_hue"].unique())
    hues = [h for h in hue_order or () if h in present]
    hues += sorted(present - set(hues))
    colors = {h: (colors or {}).get(h, f"C{i % 10}") for i, h in enumerate(hues)}

    width, height = 3.8 * len(facets) + 1.5, 6.0
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(2, len(facets), squeeze=False, sharex="col")
    for j, f in enumerate(facets):
        here = mean[mean["_facet"] == f]
        head = int(here["index"].max()) if len(here) else None  # the last weight layer
        for i, (col, label) in enumerate(
            [("act_std", "activation std"), ("grad_std", "gradient std dL/d(pre-act)")]
        ):
            ax = axes[i][j]
            for h in hues:
                sel = here[here["_hue"] == h].sort_values("index")
                values = sel[col].where(sel[col] > 0)  # log scale: drop zeros
                ax.plot(sel["index"], values, marker="o", ms=3, color=colors[h], label=h)
            plain_log_scale(ax, "y")
            ax.grid(True, which="both", alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if head is not None and head > 0:
                ax.axvspan(head - 0.4, head + 0.4, color="0.85", zorder=0, lw=0)
                ax.text(head, 0.02, "output\nlayer", transform=ax.get_xaxis_transform(),
                        ha="center", va="bottom", fontsize=7, color="0.35")
            light_minor_log_ticks(ax, grid_alpha=0.3)  # the minor half of which="both"
            ax.set_ylabel(label)
            if i == 0:
                # y=1.0: no top ticks or offset text to avoid on a log axis, and
                # matplotlib's automatic title placement measures every tick label again
                ax.set_title(f"{facet_col}={f}" if facet_col else "", y=1.0)
            else:
                ax.set_xlabel("weight layer (0 = first)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, title=hue_col, loc="center right")
    # margins in inches: y tick labels + y label | legend (handle, label, pads);
    # suptitle + panel titles on top, x tick labels + x label below
    left = gap = max(ytick_label_width(ax) for ax in fig.axes) + LABEL_IN
    right = max(_text_width(labels), _text_width([hue_col or ""])) + 0.75
    top, bottom = 0.75, 0.6
    axes_w = (width - left - right - gap * (len(facets) - 1)) / len(facets)
    axes_h = (height - top - bottom - 0.15) / 2
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                        bottom=bottom / height, wspace=gap / max(axes_w, 0.5),
                        hspace=0.15 / axes_h)
    n_runs = records["run"].nunique() if "run" in records else None
    over = (f"; mean over {n_runs} runs" if n_runs and n_runs > len(hues) * len(facets)
            else "")
    head_title = title or "Signal propagation at initialization"
    fig.suptitle(f"{head_title} (one batch{over})", fontsize=10)
    return fig


def plot_activation_histograms(
    model: nn.Module, inputs: torch.Tensor, path: str | Path, bins: int = 50
) -> Path:
    """Histogram of each layer's activations (pre-activation for layers without one) on
    ``inputs``, one small panel per weight layer in forward order.  The model is run in
    train mode with no grad; its modes, buffers and the RNG are restored (as in ``probe``).
    """
    device = next((p.device for p in model.parameters()), inputs.device)
    recorder = ForwardRecorder(keep_act_values=HIST_VALUES)
    with preserved_state(model), torch.no_grad(), recorder.attach(model):
        model(inputs.to(device))
    recs = recorder.records
    ncols = min(4, max(len(recs), 1))
    nrows = max(math.ceil(len(recs) / ncols), 1)
    fig = Figure(figsize=(3.0 * ncols, 2.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(recs):
            ax.set_visible(False)
            continue
        r = recs[k]
        values = r.act_values.numpy()
        ax.hist(values, bins=bins, color="C0")
        ax.set_title(f"{k}: {r.name} ({r.act_name})", fontsize=8)
        ax.text(
            0.98,
            0.95,
            f"std {values.std():.3g}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
        )
        ax.tick_params(labelsize=7)
    return _save(fig, path)

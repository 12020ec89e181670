"""Width-scaling figures of a sweep, read from its runs' summary.json files:

* ``coord_check.png``: the coordinate check (Yang et al. 2022, figure 5): mean |output|
  of each layer at the last recorded step against ``model.width`` (log-log), one panel per
  parametrization; flat lines = a width-stable parametrization;
* ``mutransfer.png``: training loss against the learning rate, one line per width, one
  panel per parametrization (Yang et al. 2022, figure 1): under muP the best lr stays put.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from initlab.results.files import SUMMARY_FILE


def _summaries(sweep: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(sweep.rglob(SUMMARY_FILE)):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


def coord_table(summaries: list[dict[str, Any]], step: int = -1
                ) -> dict[str, dict[str, dict[int, float]]]:
    """``{param: {layer: {width: mean over runs of mean|out| at step}}}``."""
    acc: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for s in summaries:
        cc = s.get("coord_check")
        if not cc or cc.get("width") is None:
            continue
        kind = str(s.get("config", {}).get("param.kind", "sp"))
        for layer, values in cc["layers"].items():
            if values:
                acc[(kind, layer, int(cc["width"]))].append(values[step])
    table: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for (kind, layer, width), values in acc.items():
        table[kind][layer][width] = sum(values) / len(values)
    return table


def lr_table(summaries: list[dict[str, Any]], metric: str = "final_train_loss"
             ) -> dict[str, dict[int, dict[float, float]]]:
    """``{param: {width: {lr: mean over seeds of metric}}}`` of the completed runs
    (diverged runs count as NaN, so a curve ends where training failed)."""
    acc: dict[tuple[str, int, float], list[float]] = defaultdict(list)
    for s in summaries:
        cfg = s.get("config", {})
        if cfg.get("model.width") is None or cfg.get("optimizer.lr") is None:
            continue
        value = s.get(metric) if s.get("status") == "completed" else math.nan
        value = math.nan if value is None else float(value)
        acc[(str(cfg.get("param.kind", "sp")), int(cfg["model.width"]),
             float(cfg["optimizer.lr"]))].append(value)
    table: dict[str, dict[int, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    for (kind, width, lr), values in acc.items():
        table[kind][width][lr] = sum(values) / len(values)
    return table


def plot_coord_check(sweep_dir: str | Path, out_dir: str | Path | None = None
                     ) -> dict[str, Path]:
    """Write the figures the sweep's runs allow; ``{name: path}`` (empty when none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep / "plots"
    summaries = _summaries(sweep)
    written: dict[str, Path] = {}
    table = coord_table(summaries)
    if table and any(len(w) > 1 for layers in table.values() for w in layers.values()):
        out.mkdir(parents=True, exist_ok=True)
        kinds = sorted(table)
        fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False,
                                 sharey=True)
        for ax, kind in zip(axes[0], kinds, strict=True):
            for layer, by_width in sorted(table[kind].items()):
                widths = sorted(by_width)
                ax.plot(widths, [by_width[w] for w in widths], marker="o", label=layer)
            ax.set(xscale="log", yscale="log", xlabel="width", title=f"param={kind}")
        axes[0][0].set_ylabel("mean |output| at the last recorded step")
        axes[0][-1].legend(fontsize=6, loc="best")
        fig.suptitle("coordinate check")
        fig.tight_layout()
        written["coord_check"] = out / "coord_check.png"
        fig.savefig(written["coord_check"], dpi=110)
        plt.close(fig)
    lrs = lr_table(summaries)
    if lrs and any(len(v) > 1 and len(next(iter(v.values()))) > 1 for v in lrs.values()):
        out.mkdir(parents=True, exist_ok=True)
        kinds = sorted(lrs)
        fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False,
                                 sharey=True)
        for ax, kind in zip(axes[0], kinds, strict=True):
            for width in sorted(lrs[kind]):
                by_lr = lrs[kind][width]
                xs = sorted(by_lr)
                ax.plot(xs, [by_lr[x] for x in xs], marker="o", label=f"width {width}")
            ax.set(xscale="log", yscale="log", xlabel="learning rate", title=f"param={kind}")
        axes[0][0].set_ylabel("final training loss (mean over seeds)")
        axes[0][-1].legend(fontsize=7)
        fig.tight_layout()
        written["mutransfer"] = out / "mutransfer.png"
        fig.savefig(written["mutransfer"], dpi=110)
        plt.close(fig)
    return written


def best_lr(table: dict[int, dict[float, float]]) -> dict[int, float]:
    """Per width, the lr with the lowest finite loss (the mutransfer2022 read-out)."""
    out = {}
    for width, by_lr in table.items():
        finite = {lr: v for lr, v in by_lr.items() if math.isfinite(v)}
        if finite:
            out[width] = min(finite, key=finite.get)
    return out

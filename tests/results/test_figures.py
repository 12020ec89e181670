"""What the figures say: seed counts in titles, hatching only when drawn, the init
histograms per init, PDF/SVG output, signal propagation ticks and labels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from initlab.results import plots
from initlab.results.aggregate import aggregate, collect

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def titles(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = Figure.suptitle

    def spy(self, t, *args, **kwargs):
        seen.append(t)
        return real(self, t, *args, **kwargs)

    monkeypatch.setattr(Figure, "suptitle", spy)
    return seen


def test_one_seed_is_said_and_hatching_only_mentioned_when_drawn(tmp_path, make_run,
                                                                titles) -> None:
    sweep = tmp_path / "s"
    make_run(sweep, 0, init="he", val=(0.5, 0.95))
    make_run(sweep, 1, init="xavier", val=(0.5, 0.93))
    plots.plot_all(sweep, collect(sweep))
    heat = next(t for t in titles if "best in its column" in t)
    assert "one completed run per cell" in heat and "hatched" not in heat
    curve = next(t for t in titles if t.startswith("validation accuracy"))
    assert "one run per curve" in curve and "std" not in curve
    assert any("(1 seed per configuration)" in t for t in titles)  # epochs to target
    titles.clear()
    make_run(sweep, 2, init="he", seed=1, val=(0.5,), status="diverged")
    plots.plot_all(sweep, collect(sweep))
    heat = next(t for t in titles if "best in its column" in t)
    assert "hatched: cells with diverged/failed/incomplete runs" in heat
    assert "(1-2 seeds)" in heat


def test_init_histograms_compare_the_inits(tmp_path, make_run, monkeypatch) -> None:
    from matplotlib.axes import Axes

    stairs = []
    real = Axes.stairs

    def spy(self, values, edges=None, *args, **kwargs):
        stairs.append((self, kwargs.get("label")))
        return real(self, values, edges, *args, **kwargs)

    monkeypatch.setattr(Axes, "stairs", spy)
    sweep = tmp_path / "s"
    hists = [{"layer": f"blocks.{i}.act", "edges": [0.0, 0.5, 1.0], "counts": [3, 1]}
             for i in range(3)]
    for n, init in enumerate(("random", "xavier", "he", "he")):
        make_run(sweep, n, init=init, seed=n, extra={"init_act_histograms": hists})
    aggregate(sweep)
    assert len(stairs) == 3 * 3  # 3 layers x one outline per init (he once)
    per_panel: dict[int, list[str]] = {}
    for ax, label in stairs:
        per_panel.setdefault(id(ax), []).append(label)
        assert ax.get_xlabel() in ("activation value", "")
    assert all(v == ["random", "xavier", "he"] for v in per_panel.values())


def test_pdf_and_svg_next_to_the_pngs(tmp_path, basic_sweep) -> None:
    aggregate(basic_sweep, formats=["png", "pdf", "svg"])
    out = basic_sweep / "plots"
    for stem in ("val_acc", "heatmap", "train_loss"):
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        assert b"<svg" in (out / f"{stem}.svg").read_bytes()[:500]
    aggregate(basic_sweep)  # PNG only now: the old PDFs would describe stale data
    assert not list(out.glob("*.pdf")) and not list(out.glob("*.svg"))
    assert (out / "val_acc.png").is_file()
    with pytest.raises(ValueError, match="'bmp'.*choose from png, pdf, svg"):
        aggregate(basic_sweep, formats=["bmp"])
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "aggregate.py"),
                           str(basic_sweep), "--formats", "pdf"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (out / "heatmap.pdf").is_file() and (out / "heatmap.png").is_file()


def test_callback_refuses_an_unknown_format_naming_the_key() -> None:
    from initlab.results.callback import AggregateSweep

    assert AggregateSweep(formats=["png", "pdf"]).formats == ["png", "pdf"]
    assert AggregateSweep().formats == ["png"]
    with pytest.raises(ValueError, match="hydra.callbacks.aggregate.formats.*'jpg'"):
        AggregateSweep(formats=["jpg"])


def test_signal_propagation_ticks_labels_and_output_layer() -> None:
    from initlab.diagnostics.plots import signal_propagation_figure

    rows = [{"index": i, "act_std": 1.0 / (i + 1), "grad_std": 0.1 * (i + 1),
             "init": init, "activation": act}
            for i in range(4) for init in ("he", "xavier") for act in ("relu", "tanh")]
    fig = signal_propagation_figure(pd.DataFrame(rows), title="Signal, model=mlp")
    axes = fig.axes
    assert len(axes) == 4
    for ax in axes:
        assert ax.get_ylabel()  # every panel says what it shows
        ticks = [t for t in ax.get_xticks() if -0.5 <= t <= 3.5]
        assert all(float(t).is_integer() for t in ticks)
        assert any(t.get_text() == "output\nlayer" for t in ax.texts)
    assert fig._suptitle.get_text().startswith("Signal, model=mlp")

"""Plots: the expected PNGs exist and are valid, for classification, regression, failed
heatmap cells, facets and the diagnostics hook."""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pandas as pd
import pytest

from initlab.results import plots
from initlab.results.aggregate import aggregate, collect, sweep_keys


def _pngs(sweep):
    return {p.name for p in (sweep / "plots").glob("*.png")}


def _no_temp_files(sweep) -> bool:
    return not [p for p in sweep.rglob(".*tmp*")]


def test_classification_plots_with_failed_and_diverged_cells(tmp_path, make_run, png_ok
                                                             ) -> None:
    sweep = tmp_path / "sweep"
    n = 0
    for act in ("relu", "tanh"):
        for init, base in (("xavier", 0.85), ("he", 0.92)):
            for seed in (0, 1):
                make_run(sweep, n, init=init, activation=act, seed=seed,
                         val=(0.5, base - 0.02 * seed, base))
                n += 1
    # a whole cell failed, one cell has a diverged run next to a completed one
    for seed in (0, 1):
        make_run(sweep, n, init="zeros", activation="relu", seed=seed, status="failed")
        n += 1
    make_run(sweep, n, init="zeros", activation="tanh", seed=0, val=(0.1, 0.12, 0.13))
    make_run(sweep, n + 1, init="zeros", activation="tanh", seed=1, val=(0.1, 0.2),
             status="diverged")
    written = aggregate(sweep)
    assert {"val_acc.png", "train_loss.png", "heatmap.png", "epochs_to_target.png"} <= \
        _pngs(sweep)
    assert "val_loss.png" not in _pngs(sweep)
    for p in (sweep / "plots").glob("*.png"):
        assert png_ok(p), p
    assert _no_temp_files(sweep)
    assert written["plots"] == sweep / "plots"


def test_heatmap_cell_marks() -> None:
    assert plots._cell_text(float("nan"), {"failed": 2}, ".3f") == "fail"
    assert plots._cell_text(float("nan"), {"diverged": 1, "failed": 1}, ".3f") == "div"
    assert plots._cell_text(0.91234, {"completed": 1, "diverged": 1}, ".3f") == "0.912\n1 div"
    assert plots._cell_text(0.5, {"completed": 3}, ".3f") == "0.500"


def test_regression_only_sweep(tmp_path, make_run, png_ok) -> None:
    sweep = tmp_path / "reg"
    n = 0
    for init in ("he", "xavier", "orthogonal"):
        for seed in (0, 1):
            make_run(sweep, n, init=init, seed=seed, task="regression", target=0.5,
                     val=(1.0, 0.6 - 0.01 * n, 0.4 + 0.02 * n))
            n += 1
    aggregate(sweep)
    names = _pngs(sweep)
    assert {"val_loss.png", "train_loss.png", "heatmap.png", "epochs_to_target.png"} <= names
    assert "val_acc.png" not in names
    for p in (sweep / "plots").glob("*.png"):
        assert png_ok(p), p
    report = (sweep / "report.md").read_text()
    assert "plots/val_loss.png" in report and "ranked by mean best val loss" in report


def test_heatmap_axes_argument_and_unknown_axis(tmp_path, make_run, png_ok) -> None:
    sweep = tmp_path / "s"
    n = 0
    for depth in (2, 4):
        for init in ("he", "xavier"):
            make_run(sweep, n, init=init, config={"model.depth": depth}, val=(0.5, 0.9))
            n += 1
    results = collect(sweep)
    keys = sweep_keys(results)
    assert keys.facets == ("cfg.model.depth",)
    # init.distribution only differs because each scheme has its default: not an axis
    assert "cfg.init.distribution" not in keys.swept
    aggregate(sweep, axes=("model.depth", "init"))
    assert png_ok(sweep / "plots" / "heatmap.png")
    with pytest.raises(ValueError, match="unknown axis 'nope'.*model.depth"):
        aggregate(sweep, axes=("init", "nope"))


def test_many_facets_are_capped(tmp_path, make_run, caplog, monkeypatch) -> None:
    monkeypatch.setattr(plots, "MAX_FACETS", 2)
    sweep = tmp_path / "s"
    for n in range(4):
        make_run(sweep, n, init="he", config={"model.width": 8 * (n + 1)}, val=(0.5, 0.6))
    with caplog.at_level(logging.WARNING, logger="initlab.results.plots"):
        written = plots.plot_all(sweep, collect(sweep))
    assert "val_acc" in written
    assert any("only the first" in r.getMessage() for r in caplog.records)


def test_diagnostics_figure_via_diagnostics_package(tmp_path, make_run, monkeypatch,
                                                    png_ok) -> None:
    calls = {}

    def fake_plot(frame, path, facet="activation", hue="init", colors=None, hue_order=None):
        import matplotlib.pyplot as plt

        calls.update(frame=frame, facet=facet, hue=hue, colors=colors, hue_order=hue_order)
        fig, ax = plt.subplots()
        for init, g in frame.groupby(hue):
            ax.plot(g["index"], g["act_std"], label=init)
        fig.savefig(path)
        plt.close(fig)

    fake = types.ModuleType("initlab.diagnostics.plots")
    fake.plot_signal_propagation = fake_plot
    monkeypatch.setitem(sys.modules, "initlab.diagnostics.plots", fake)
    sweep = tmp_path / "s"
    layers = [{"index": i, "layer": f"l{i}", "act_std": 1.0 / (i + 1), "grad_std": 0.1}
              for i in range(3)]
    make_run(sweep, 0, init="he", diagnostics=layers, val=(0.5, 0.9))
    make_run(sweep, 1, init="xavier", diagnostics=layers, val=(0.5, 0.8))
    written = aggregate(sweep)
    assert png_ok(sweep / "plots" / "signal_propagation.png")
    assert calls["facet"] == "activation" and calls["hue"] == "init"
    frame = calls["frame"]
    assert len(frame) == 6 and set(frame["init"]) == {"he", "xavier"}
    assert {"index", "layer", "act_std", "grad_std", "activation", "seed", "run"} <= \
        set(frame.columns)
    assert "plots/signal_propagation.png" in written["report"].read_text()
    assert _no_temp_files(sweep)
    # the same colour per init as in the curves, and in every sweep (fixed per scheme)
    import matplotlib.pyplot as plt

    tab10 = plt.get_cmap("tab10")
    assert calls["hue_order"] == ["he", "xavier"]
    assert calls["colors"] == {"he": tab10(plots.SCHEME_COLORS["he"]),
                               "xavier": tab10(plots.SCHEME_COLORS["xavier"])}


def test_diagnostics_figure_skipped_without_function(tmp_path, make_run, monkeypatch,
                                                     caplog) -> None:
    monkeypatch.setitem(sys.modules, "initlab.diagnostics.plots",
                        types.ModuleType("initlab.diagnostics.plots"))
    sweep = tmp_path / "s"
    make_run(sweep, 0, diagnostics=[{"index": 0, "layer": "l0", "act_std": 1.0}])
    with caplog.at_level(logging.WARNING, logger="initlab.results.plots"):
        written = plots.plot_all(sweep, collect(sweep),
                                 diagnostics=pd.DataFrame({"index": [0], "act_std": [1.0],
                                                           "init": ["he"],
                                                           "activation": ["relu"]}))
    assert "signal_propagation" not in written and "val_acc" in written
    assert any("init diagnostics figure skipped" in r.getMessage() for r in caplog.records)


def test_read_history_fast_path(tmp_path) -> None:
    p = tmp_path / "history.csv"
    p.write_text("epoch,step,train_loss,val_acc\n1,10,0.5,\n2,20,0.25,0.75\n")
    h = plots.read_history(p)
    assert h["epoch"].tolist() == [1.0, 2.0] and np.isnan(h["val_acc"][0])
    assert h["val_acc"][1] == 0.75
    assert "val_loss" not in h
    (tmp_path / "empty.csv").write_text("")
    assert plots.read_history(tmp_path / "empty.csv") == {}
    assert plots.read_history(tmp_path / "missing.csv") == {}


def test_diagnostics_split_by_other_swept_keys_and_stale_figures(tmp_path, make_run,
                                                                 monkeypatch) -> None:
    frames = []

    def fake_plot(frame, path, facet="activation", hue="init", **_):
        frames.append(frame)
        path.write_bytes(b"\x89PNG\r\n\x1a\n")

    fake = types.ModuleType("initlab.diagnostics.plots")
    fake.plot_signal_propagation = fake_plot
    monkeypatch.setitem(sys.modules, "initlab.diagnostics.plots", fake)
    sweep = tmp_path / "s"
    n = 0
    for depth in (2, 3):
        for act in ("relu", "tanh"):
            layers = [{"index": i, "layer": f"l{i}", "activation": "identity" if i == depth
                       else act, "act_std": 1.0, "grad_std": 0.1} for i in range(depth + 1)]
            make_run(sweep, n, init="he", activation=act, config={"model.depth": depth},
                     diagnostics=layers, val=(0.5, 0.9))
            n += 1
    (sweep / "plots").mkdir()
    (sweep / "plots" / "signal_propagation.png").write_bytes(b"old")
    (sweep / "plots" / "mine.png").write_bytes(b"user file")
    written = plots.plot_all(sweep, collect(sweep), diagnostics=__import__(
        "initlab.results.aggregate", fromlist=["scan"]).scan(sweep).diagnostics)
    assert [f["run"].nunique() for f in frames] == [2, 2]
    assert [sorted(f["index"].unique()) for f in frames] == [[0, 1, 2], [0, 1, 2, 3]]
    assert set(frames[0]["activation"]) == {"relu", "tanh"}  # the run's, per layer below
    assert "identity" in set(frames[0]["layer_activation"])
    assert "signal_propagation: model.depth=2" in written
    names = {p.name for p in (sweep / "plots").iterdir()}
    assert {"signal_propagation_1.png", "signal_propagation_2.png", "mine.png"} <= names
    assert "signal_propagation.png" not in names  # stale figure of an earlier aggregation


def test_init_without_any_curve_is_named_in_the_legend(tmp_path, make_run, monkeypatch,
                                                       png_ok) -> None:
    legends = []
    real = plots._legend

    def spy(fig, hues, colors, extra, title):
        legends.append((list(hues), [h.get_label() for h in extra]))
        real(fig, hues, colors, extra, title)

    monkeypatch.setattr(plots, "_legend", spy)
    sweep = tmp_path / "s"
    for seed in (0, 1):
        make_run(sweep, seed, init="xavier", seed=seed, task="regression", val=(0.5, 0.3))
        make_run(sweep, 2 + seed, init="he", seed=seed, task="regression", val=(),
                 status="diverged")
    written = plots.plot_all(sweep, collect(sweep))
    assert png_ok(written["val_loss"])
    hues, extra = legends[0]
    assert hues == ["xavier"] and extra == ["he: no epoch recorded (2 diverged)"]


def test_init_histograms_of_one_run(tmp_path, make_run, png_ok) -> None:
    import json

    sweep = tmp_path / "sweep"
    make_run(sweep, 0, init="he", seed=0, val=(0.5, 0.9))
    make_run(sweep, 1, init="xavier", seed=0, val=(0.5, 0.8))
    assert "init_histograms.png" not in _pngs(sweep)  # no run has histograms yet
    aggregate(sweep)
    assert "init_histograms.png" not in _pngs(sweep)
    run = next(p for p in sweep.iterdir() if p.name.startswith("1_"))
    summary = json.loads((run / "summary.json").read_text())
    summary["init_act_histograms"] = [
        {"layer": f"blocks.{i}.act", "edges": [0.0, 0.5, 1.0], "counts": [3, 1]}
        for i in range(3)]
    (run / "summary.json").write_text(json.dumps(summary))
    aggregate(sweep)
    assert png_ok(sweep / "plots" / "init_histograms.png")
    assert "plots/init_histograms.png" in (sweep / "report.md").read_text()


def test_epochs_to_target_mean_and_ci_are_over_the_completed_runs_only(
        tmp_path, make_run, monkeypatch, png_ok) -> None:
    # as summary.csv's epochs_to_target_mean: the point with its 95 % CI is over the
    # completed runs that reached the target; a run that reached it and diverged later is
    # an x mark, not in the mean
    from matplotlib.axes import Axes
    from scipy import stats

    bars = []
    real = Axes.errorbar

    def spy(self, x, y, *args, **kwargs):
        bars.append((list(y), kwargs.get("yerr")))
        return real(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "errorbar", spy)
    sweep = tmp_path / "s"
    make_run(sweep, 0, seed=0, val=(0.5, 0.95))  # reached at epoch 2
    make_run(sweep, 1, seed=1, val=(0.5, 0.8, 0.95))  # at epoch 3
    make_run(sweep, 2, seed=2, val=(0.95,), status="diverged")  # at epoch 1, diverged
    results = collect(sweep)
    assert sorted(results["epochs_to_target"]) == [1, 2, 3]
    written = plots.plot_all(sweep, results)
    assert png_ok(written["epochs_to_target"])
    ((means, yerr),) = bars
    assert means == [2.5]
    # t_{0.975, 1} * std([2, 3]) / sqrt(2)
    half = stats.t.ppf(0.975, 1) * np.std([2.0, 3.0], ddof=1) / np.sqrt(2)
    assert yerr[0][0] == pytest.approx(half) and yerr[1][0] == pytest.approx(half)


def test_a_panel_says_which_init_has_no_curve_in_it(tmp_path, make_run, monkeypatch,
                                                    png_ok) -> None:
    # he diverged in its first epoch with relu only: the relu panel says so (the legend
    # cannot: he has a curve in the tanh panel)
    from matplotlib.axes import Axes

    notes = []
    real = Axes.text

    def spy(self, x, y, s, *args, **kwargs):
        notes.append((self, s))
        return real(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(Axes, "text", spy)
    sweep = tmp_path / "s"
    n = 0
    for act in ("relu", "tanh"):
        for seed in (0, 1):
            make_run(sweep, n, init="xavier", activation=act, seed=seed)
            diverged = act == "relu"
            make_run(sweep, n + 1, init="he", activation=act, seed=seed,
                     val=() if diverged else (0.5, 0.8),
                     status="diverged" if diverged else "completed")
            n += 2
    written = plots.plot_all(sweep, collect(sweep))
    assert png_ok(written["val_acc"])
    mine = [s for _, s in notes if s.startswith("no epoch recorded")]
    assert mine and set(mine) == {"no epoch recorded: he (2 diverged)"}
    assert {ax.get_title() for ax, s in notes if s in mine} == {"activation=relu"}

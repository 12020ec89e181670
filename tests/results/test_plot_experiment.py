"""scripts/plot_experiment.py on results written by the aggregation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from initlab.results.aggregate import aggregate

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plot_experiment.py"


def plot_module():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("plot_experiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runs_done_twice_count_once_and_divergence_marks_sit_at_their_epoch(
        tmp_path, make_run, monkeypatch) -> None:
    from matplotlib.axes import Axes

    marks = []
    real = Axes.scatter

    def spy(self, x, y, *args, **kwargs):
        marks.append(list(x))
        return real(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", spy)
    sweep = tmp_path / "sweep"
    arm = {"study.arm": "he"}
    make_run(sweep, 0, seed=0, val=(0.5, 0.8), config=arm)
    make_run(sweep, 1, seed=1, val=(0.5,), status="diverged", config=arm)  # in epoch 2
    make_run(sweep, 2, seed=1, val=(0.5,), status="diverged", config=arm)  # seed 1 again
    aggregate(sweep, plots=False)
    module = plot_module()
    results = module.load_results(sweep)
    assert len(results) == 2  # the repeat of seed 1 is left out
    assert list(results["diverged_epoch"].dropna()) == [2]
    module.plot_arms(results, sweep, tmp_path / "arms.png", "val_acc", "t")
    assert marks == [[2]]  # the x at epoch 2, where history.csv would have the row
    assert pd.read_csv(sweep / "results.csv")["duplicate_of"].notna().sum() == 1


def test_generic_figure_averages_completed_runs_and_marks_diverged_ones(
        tmp_path, make_run, monkeypatch) -> None:
    # a run that diverged in epoch 3 cut the mean curve to 2 epochs and dragged it down
    from matplotlib.axes import Axes

    lines, marks = [], []
    real_plot, real_scatter = Axes.plot, Axes.scatter

    def plot(self, *args, **kwargs):
        lines.append((list(args[0]), list(args[1])))
        return real_plot(self, *args, **kwargs)

    def scatter(self, x, y, *args, **kwargs):
        marks.append(list(x))
        return real_scatter(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", plot)
    monkeypatch.setattr(Axes, "scatter", scatter)
    sweep = tmp_path / "sweep"
    make_run(sweep, 0, seed=0, val=(0.5, 0.8, 0.9, 0.95))
    make_run(sweep, 1, seed=1, val=(0.3, 0.2), status="diverged")
    aggregate(sweep, plots=False)
    module = plot_module()
    module.plot_generic(module.load_results(sweep), sweep, tmp_path / "g.png")
    assert lines == [([1, 2, 3, 4], [0.5, 0.8, 0.9, 0.95])]  # the completed run alone
    assert marks == [[3]]

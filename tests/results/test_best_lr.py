"""Best-lr reading of an lr x init sweep: summary.csv columns, the report section with its
edge warning, and the lr-sensitivity figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from initlab.results import plots
from initlab.results.aggregate import aggregate
from initlab.results.stats import mean_difference

# best val acc per (init, lr); seeds add 0, +0.01, +0.02
ACC = {("he", 0.01): 0.80, ("he", 0.1): 0.90, ("he", 1.0): 0.85,
       ("xavier", 0.01): 0.70, ("xavier", 0.1): 0.80, ("xavier", 1.0): 0.88}


def _lr_sweep(root, make_run, acc=ACC, diverge=(("he", 1.0, 2),)):
    sweep = root / "sweep"
    n = 0
    for (init, lr), a in acc.items():
        for seed in (0, 1, 2):
            status = "diverged" if (init, lr, seed) in diverge else "completed"
            make_run(sweep, n, init=init, seed=seed, config={"optimizer.lr": lr},
                     val=(0.5, a + 0.01 * seed), status=status)
            n += 1
    return sweep


def test_best_lr_columns_and_edge(tmp_path, make_run) -> None:
    written = aggregate(_lr_sweep(tmp_path, make_run), plots=False)
    s = pd.read_csv(written["summary"])
    best = s[s["at_best"]].set_index("init")
    assert sorted(best.index) == ["he", "xavier"] and len(best) == 2
    assert best.loc["he", "cfg.optimizer.lr"] == 0.1
    assert best.loc["xavier", "cfg.optimizer.lr"] == 1.0
    assert best.loc["he", "best_val_acc_mean"] == pytest.approx(0.91)
    # ranked at their own best lr: he 0.91 > xavier 0.89
    assert best.loc["he", "best_rank"] == 1 and best.loc["xavier", "best_rank"] == 2
    # every row of an init names its best lr; xavier's is the largest swept
    for _, r in s.iterrows():
        assert r["best_optimizer.lr"] == (0.1 if r["init"] == "he" else 1.0)
    edge = s.set_index(["init", "cfg.optimizer.lr"])["best_optimizer.lr_edge"]
    assert edge.loc[("xavier", 0.01)] == "largest" and pd.isna(edge.loc[("he", 0.01)])
    # the fixed-lr ranking is unchanged: within each lr
    fixed = s.set_index(["init", "cfg.optimizer.lr"])["rank"]
    assert fixed.loc[("he", 0.01)] == 1 and fixed.loc[("xavier", 1.0)] == 1
    report = written["report"].read_text()
    section = report.split("## Best optimizer.lr per init", 1)[1].split("\n## ", 1)[0]
    assert "| 1 | he | 0.1 | 0.9100" in section
    assert "| 2 | xavier | 1.0 | 0.8900" in section
    assert "best optimizer.lr is the largest swept" in section
    assert "**Warning: the swept range may be too narrow** - xavier" in section
    assert "**Winner at each init's best optimizer.lr: he**" in section
    assert "## Ranking" in report  # the fixed-lr tables stay


def test_smallest_edge_and_no_warning_inside(tmp_path, make_run) -> None:
    acc = {("he", 0.01): 0.95, ("he", 0.1): 0.90, ("he", 1.0): 0.85,
           ("xavier", 0.01): 0.70, ("xavier", 0.1): 0.80, ("xavier", 1.0): 0.75}
    written = aggregate(_lr_sweep(tmp_path, make_run, acc, ()), plots=False)
    s = pd.read_csv(written["summary"])
    best = s[s["at_best"]].set_index("init")
    assert best.loc["he", "best_optimizer.lr_edge"] == "smallest"
    assert pd.isna(best.loc["xavier", "best_optimizer.lr_edge"])
    report = written["report"].read_text()
    assert "he: best optimizer.lr 0.01 is the smallest value swept" in report
    assert "xavier: best optimizer.lr" not in report


def test_no_best_lr_without_a_swept_optimizer_key(basic_sweep) -> None:
    written = aggregate(basic_sweep, plots=False)
    s = pd.read_csv(written["summary"])
    assert "at_best" not in s and "## Best" not in written["report"].read_text()


def test_lr_sensitivity_figure(tmp_path, make_run, monkeypatch, png_ok) -> None:
    from matplotlib.axes import Axes

    drawn = []
    real = Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((args, kwargs))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", spy)
    sweep = _lr_sweep(tmp_path, make_run)
    written = aggregate(sweep)
    path = sweep / "plots" / "lr_sensitivity.png"
    assert png_ok(path) and "plots/lr_sensitivity.png" in written["report"].read_text()
    lines = {kw.get("label"): (list(a[0]), list(a[1])) for a, kw in drawn
             if kw.get("label") in ("he", "xavier") and len(a) == 2}
    assert lines["xavier"][0] == [0.01, 0.1, 1.0]
    np.testing.assert_allclose(lines["xavier"][1], [0.71, 0.81, 0.89])
    # he at lr 1.0: the mean of its two completed seeds; the diverged one is an x
    np.testing.assert_allclose(lines["he"][1], [0.81, 0.91, 0.855])
    crosses = [a for a, kw in drawn if kw.get("marker") == "x" and kw.get("clip_on") is False]
    assert [list(a[0]) for a in crosses] == [[1.0]]
    stars = [list(a[0]) for a, kw in drawn if kw.get("marker") == "*" and len(a[0]) == 1]
    assert sorted(stars) == [[0.1], [1.0]]  # he's best, xavier's best


def test_mean_difference_ci_is_welchs() -> None:
    a, b = [0.91, 0.93, 0.90, 0.95], [0.85, 0.80, 0.88]
    d = mean_difference(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    lo, hi = ref.confidence_interval(0.95)
    assert d.effect == pytest.approx(np.mean(a) - np.mean(b))
    assert d.ci95 == pytest.approx((hi - lo) / 2)
    assert d.p == pytest.approx(ref.pvalue)
    one = mean_difference([0.9], b)
    assert np.isnan(one.ci95) and np.isnan(one.p) and one.reason == "a single seed"


def test_init_colours_are_fixed_per_scheme() -> None:
    one = plots.init_colors(["xavier", "he"])
    two = plots.init_colors(["he", "random", "lecun", "xavier"])
    assert one["he"] == two["he"] and one["xavier"] == two["xavier"]
    assert len({tuple(c) for c in two.values()}) == 4
    mixed = plots.init_colors(["he", "he, init.gain=2.0"])
    assert mixed["he"] != mixed["he, init.gain=2.0"]


@pytest.mark.slow
def test_real_lr_by_init_sweep_warns_when_the_best_lr_is_the_largest(run_train, tmp_path,
                                                                      png_ok) -> None:
    # two tiny learning rates for one epoch: the larger learns more, for both inits
    proc = run_train(["-m", "init=xavier,he", "optimizer.lr=0.0001,0.001", "seed=0,1",
                      "trainer.max_epochs=1", "logger=none", "diagnostics=off", "threads=1",
                      f"paths.output_root={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = tmp_path.glob("multirun/*")
    s = pd.read_csv(sweep / "summary.csv")
    best = s[s["at_best"]].set_index("init")
    assert list(best["cfg.optimizer.lr"]) == [0.001, 0.001]
    assert set(best["best_optimizer.lr_edge"]) == {"largest"}
    acc = s.set_index(["init", "cfg.optimizer.lr"])["best_val_acc_mean"]
    for init in ("xavier", "he"):
        assert acc.loc[(init, 0.001)] > acc.loc[(init, 0.0001)]
    report = (sweep / "report.md").read_text()
    assert "**Warning: the swept range may be too narrow**" in report
    assert "best optimizer.lr 0.001 is the largest value swept" in report
    assert png_ok(sweep / "plots" / "lr_sensitivity.png")

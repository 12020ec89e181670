"""summary.csv against statistics computed by hand from results.csv."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from initlab.results.aggregate import aggregate
from initlab.results.stats import ci95_halfwidth, describe, welch

# best val acc per (init, seed); he seed 2 diverges
CURVES = {
    ("xavier", 0): (0.60, 0.80, 0.84),
    ("xavier", 1): (0.62, 0.86, 0.83),
    ("xavier", 2): (0.55, 0.79, 0.88),
    ("he", 0): (0.70, 0.91, 0.93),
    ("he", 1): (0.72, 0.90, 0.95),
    ("he", 2): (0.71, 0.30),
}


@pytest.fixture
def sweep(tmp_path, make_run):
    sweep = tmp_path / "sweep"
    for n, ((init, seed), val) in enumerate(CURVES.items()):
        diverged = init == "he" and seed == 2
        make_run(sweep, n, init=init, seed=seed, val=val,
                 status="diverged" if diverged else "completed", diverged_step=17,
                 extra={"init_act_std_last": 0.5 + 0.1 * n, "measured_chi1": 0.9 + 0.05 * n})
    return sweep


def test_summary_matches_hand_computation(sweep) -> None:
    written = aggregate(sweep, plots=False)
    res = pd.read_csv(written["results"])
    summ = pd.read_csv(written["summary"]).set_index("init")
    assert summ.loc["he", "n"] == 3
    assert summ.loc["he", "n_completed"] == 2 and summ.loc["he", "n_diverged"] == 1
    assert summ.loc["xavier", "n_completed"] == 3 and summ.loc["xavier", "n_diverged"] == 0
    assert summ.loc["he", "n_failed"] == 0 and summ.loc["he", "n_incomplete"] == 0
    for init in ("he", "xavier"):
        # rule: training metrics are averaged over the completed runs only
        done = res[(res["init"] == init) & (res["status"] == "completed")]
        for metric in ("best_val_acc", "final_val_acc", "final_train_loss", "test_acc",
                       "best_val_loss"):
            v = done[metric].to_numpy(dtype=float)
            n = len(v)
            mean, std = v.mean(), v.std(ddof=1)
            ci = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)
            assert summ.loc[init, f"{metric}_mean"] == pytest.approx(mean), metric
            assert summ.loc[init, f"{metric}_std"] == pytest.approx(std), metric
            assert summ.loc[init, f"{metric}_ci95"] == pytest.approx(ci), metric
    # the diverged run's numbers are not in the mean
    assert summ.loc["he", "best_val_acc_mean"] == pytest.approx((0.93 + 0.95) / 2)
    # init diagnostics are measured before training: averaged over every run
    he_all = res[res["init"] == "he"]["init_act_std_last"].to_numpy(dtype=float)
    assert summ.loc["he", "init_act_std_last_mean"] == pytest.approx(he_all.mean())
    # epochs to target: over the completed runs that reached it, with the count
    assert summ.loc["he", "n_reached_target"] == 2
    assert summ.loc["xavier", "n_reached_target"] == 0
    assert np.isnan(summ.loc["xavier", "epochs_to_target_mean"])
    # ranked by mean best val accuracy, highest first
    assert summ.loc["he", "rank"] == 1 and summ.loc["xavier", "rank"] == 2
    assert (summ["rank_by"] == "best_val_acc").all()


def test_single_seed_has_no_ci(tmp_path, make_run) -> None:
    sweep = tmp_path / "one"
    make_run(sweep, 0, init="he", seed=0, val=(0.5, 0.9))
    make_run(sweep, 1, init="xavier", seed=0, val=(0.5, 0.8))
    summ = pd.read_csv(aggregate(sweep, plots=False)["summary"])
    assert summ["best_val_acc_mean"].notna().all()
    assert summ["best_val_acc_std"].isna().all() and summ["best_val_acc_ci95"].isna().all()


def test_ci95_formula() -> None:
    # t_{0.975, 2} = 4.302652729...
    assert ci95_halfwidth(1.0, 3) == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert math.isnan(ci95_halfwidth(1.0, 1))
    d = describe([1.0, 2.0, float("nan"), 3.0])
    assert (d.n, d.mean, d.std) == (3, 2.0, 1.0)
    assert d.ci95 == pytest.approx(4.302652729911275 / math.sqrt(3))


def test_welch_matches_scipy() -> None:
    a, b = [0.9, 0.92, 0.95], [0.8, 0.85, 0.83, 0.86]
    ref = stats.ttest_ind(a, b, equal_var=False)
    cmp = welch(a, b)
    assert cmp.p == pytest.approx(ref.pvalue) and cmp.t == pytest.approx(ref.statistic)
    assert cmp.significant is True
    assert welch([0.9], b).significant is None and welch([0.9], b).reason == "a single seed"
    assert welch([0.5, 0.5], [0.5, 0.5]).significant is None
    assert welch([0.6, 0.6], [0.5, 0.5]).significant is True


@pytest.mark.parametrize("value", [0.1, 0.7, 0.9876, 1 / 3])
def test_welch_on_constant_values_does_not_test_rounding_noise(value: float) -> None:
    # every seed gave the same number: the mean of 3 or 7 copies of 0.7 is not exactly 0.7
    # (std ~1e-16), which must not count as spread
    same = welch([value] * 3, [value] * 7)
    assert same.significant is None and same.reason == "identical values"
    apart = welch([value] * 3, [value + 0.01] * 7)
    assert apart.significant is True and apart.t == -math.inf


def test_regression_ranked_by_lowest_loss(tmp_path, make_run) -> None:
    sweep = tmp_path / "reg"
    n = 0
    for init, losses in (("he", (0.9, 0.5, 0.30)), ("xavier", (0.9, 0.4, 0.2)),
                         ("random", (1.0, 1.0, 0.99))):
        for seed in (0, 1):
            make_run(sweep, n, init=init, seed=seed, task="regression",
                     val=tuple(v + 0.01 * seed for v in losses), target=0.45)
            n += 1
    written = aggregate(sweep, plots=False)
    summ = pd.read_csv(written["summary"])
    assert summ["init"].tolist() == ["xavier", "he", "random"]
    assert summ["rank"].tolist() == [1, 2, 3]
    assert (summ["rank_by"] == "best_val_loss").all() and (summ["task"] == "regression").all()
    assert summ["best_val_loss_mean"].tolist() == pytest.approx([0.205, 0.305, 0.995])
    res = pd.read_csv(written["results"])
    assert res["best_val_acc"].isna().all()
    assert res.set_index("run").filter(like="init=he", axis=0)["epochs_to_target"].tolist() \
        == [3, 3]


def test_arms_of_a_study_are_ranked_against_each_other(tmp_path, make_run) -> None:
    # fixup2019-like arms: each arm fixes the init and the norm; the norm used to be a
    # context key, so every arm was ranked alone ("no comparison")
    sweep = tmp_path / "sweep"
    arms = [("fixup", "fixup", "none", 0.90), ("bn_he", "he", "batch", 0.80),
            ("he", "he", "none", 0.50)]
    n = 0
    for arm, init, norm, best in arms:
        for seed in (0, 1):
            make_run(sweep, n, init=init, seed=seed, val=(0.3, best + seed / 100),
                     config={"study.arm": arm, "model.norm": norm})
            n += 1
    written = aggregate(sweep, plots=False)
    summ = pd.read_csv(written["summary"])
    assert list(summ["cfg.study.arm"]) == ["fixup", "bn_he", "he"]
    assert list(summ["rank"]) == [1, 2, 3]  # one ranking over the three arms
    report = written["report"].read_text()
    assert "**Winner: fixup" in report and "no comparison" not in report

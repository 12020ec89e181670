"""report.md: ranking, winner, significance, problems, diagnostics, plot links."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from initlab.results.aggregate import aggregate


def _sweep(root, make_run, finals: dict[str, list[float]], **kw):
    sweep = root / "sweep"
    n = 0
    for init, values in finals.items():
        for seed, v in enumerate(values):
            make_run(sweep, n, init=init, seed=seed, val=(0.3, v - 0.1, v), **kw)
            n += 1
    return sweep


def _ranking(report: str) -> list[str]:
    """init names of the ranking table, in order."""
    section = report.split("## Ranking", 1)[1].split("\n## ", 1)[0]
    return [m.group(2) for m in re.finditer(r"^\| (\d+|-) \| ([^|]+?) \|", section, re.M)]


def test_clear_winner_is_significant(tmp_path, make_run) -> None:
    sweep = _sweep(tmp_path, make_run, {"xavier": [0.80, 0.81, 0.79],
                                        "he": [0.95, 0.96, 0.955],
                                        "random": [0.10, 0.12, 0.11]})
    written = aggregate(sweep, plots=False)
    summ = pd.read_csv(written["summary"])
    assert summ["init"].tolist() == ["he", "xavier", "random"]
    assert summ["rank"].tolist() == [1, 2, 3]
    report = written["report"].read_text()
    assert _ranking(report) == ["he", "xavier", "random"]
    assert "**Winner: he**" in report
    assert "runner-up xavier" in report
    assert "best val acc 0.9550 vs 0.8000" in report and "margin 0.1550" in report
    assert "the difference is significant (Welch's t-test p = " in report
    assert "not significant" not in report
    # what was swept
    assert re.search(r"\| init \| xavier, he, random \| swept \|", report)
    assert "seeds: 0, 1, 2" in report and "runs: 9 in 3 configuration(s)" in report


def test_close_call_is_not_significant(tmp_path, make_run) -> None:
    sweep = _sweep(tmp_path, make_run, {"xavier": [0.89, 0.94, 0.86],
                                        "he": [0.90, 0.95, 0.85]})
    report = aggregate(sweep, plots=False)["report"].read_text()
    assert _ranking(report) == ["he", "xavier"]  # mean 0.9 vs 0.8967
    winner = next(line for line in report.splitlines() if "**Winner:" in line)
    assert "**Winner: he**" in winner and "margin 0.0033" in winner
    assert "the difference is not significant (Welch's t-test p = " in winner


def test_single_seed_significance_is_na(tmp_path, make_run) -> None:
    sweep = _sweep(tmp_path, make_run, {"xavier": [0.8], "he": [0.9]})
    report = aggregate(sweep, plots=False)["report"].read_text()
    assert "**Winner: he**" in report
    assert "significance: n/a (a single seed)" in report


def test_problems_and_diagnostics_sections(tmp_path, make_run) -> None:
    sweep = tmp_path / "sweep"
    extra = {"init_act_std_last": 0.7, "init_grad_std_ratio": 1.1, "measured_chi1": 1.05,
             "meanfield_chi_1": 1.0}
    make_run(sweep, 0, init="he", seed=0, val=(0.5, 0.9), extra=extra)
    make_run(sweep, 1, init="he", seed=1, val=(0.5, 0.92), extra=extra)
    make_run(sweep, 2, init="random", seed=0, val=(0.1, 0.1), status="diverged",
             diverged_step=42, error="training loss became nan at step 42 (epoch 1)")
    make_run(sweep, 3, init="zeros", seed=0, status="failed", error_type="ValueError",
             error="init.gain='x' is not allowed | pipes are escaped")
    report = aggregate(sweep, plots=False)["report"].read_text()
    problems = report.split("## Diverged and failed runs", 1)[1].split("\n## ", 1)[0]
    assert "diverged" in problems and "step 42" in problems
    assert "training loss became nan at step 42" in problems
    assert "failed" in problems and "ValueError: init.gain='x' is not allowed \\| pipes" \
        in problems
    # configurations without a completed run are listed, unranked
    assert _ranking(report) == ["he", "random", "zeros"]
    assert "| - | random |" in report
    diag = report.split("## Initialization diagnostics", 1)[1].split("\n## ", 1)[0]
    assert "measured \u03c7\u2081" in diag and "mean-field \u03c7\u2081" in diag
    assert "| he | 0.7 | 1.1 | 1.05 | 1 |" in diag


def test_report_embeds_plots_with_relative_links(basic_sweep) -> None:
    written = aggregate(basic_sweep, plots=True)
    report = written["report"].read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert "plots/val_acc.png" in links and "plots/heatmap.png" in links
    for link in links:
        assert not link.startswith("/") and (basic_sweep / link).is_file()


def test_a_target_nobody_reached_is_said(tmp_path, make_run) -> None:
    # target 0.9, best accuracies below it: the column stays, with "(0/n reached)"
    sweep = _sweep(tmp_path, make_run, {"xavier": [0.80, 0.82], "he": [0.85, 0.86]})
    report = aggregate(sweep, plots=False)["report"].read_text()
    assert report.count("(0/2 reached)") == 2


def test_an_infinite_metric_is_left_out_of_the_test_as_of_the_mean(tmp_path,
                                                                    make_run) -> None:
    sweep = tmp_path / "sweep"
    inf = float("inf")
    runs = [("xavier", (0.5, 0.30)), ("xavier", (0.5, 0.32)), ("xavier", (0.5, 0.31)),
            ("he", (0.5, 0.20)), ("he", (0.5, 0.21)), ("he", (inf, inf))]
    for n, (init, val) in enumerate(runs):
        make_run(sweep, n, init=init, seed=n % 3, task="regression", val=val, target=None)
    written = aggregate(sweep, plots=False)
    summ = pd.read_csv(written["summary"]).set_index("init")
    assert summ.loc["he", "best_val_loss_mean"] == pytest.approx(0.205)  # the two finite
    winner = next(line for line in written["report"].read_text().splitlines()
                  if "**Winner:" in line)
    assert "**Winner: he**" in winner and "Welch's t-test p = " in winner
    assert "n/a ()" not in winner


def test_a_single_configuration_is_not_said_to_be_the_only_survivor(tmp_path,
                                                                     make_run) -> None:
    sweep = _sweep(tmp_path, make_run, {"he": [0.9, 0.92]})
    report = aggregate(sweep, plots=False)["report"].read_text()
    assert "the only configuration in this group; no comparison" in report


def test_no_target_no_epochs_to_target_column(tmp_path, make_run) -> None:
    sweep = _sweep(tmp_path, make_run, {"xavier": [0.80, 0.82], "he": [0.85, 0.86]},
                   target=None)
    report = aggregate(sweep, plots=False)["report"].read_text()
    assert "reached)" not in report and "epochs to target" not in report.lower()

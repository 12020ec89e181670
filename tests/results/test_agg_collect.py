"""results.csv: one row per run folder, broken run folders listed as incomplete."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from initlab.results.aggregate import aggregate, collect, run_dirs, status_line


def _broken_sweep(sweep: Path, make_run) -> Path:
    make_run(sweep, 0, init="he", seed=0, val=(0.6, 0.8, 0.92))
    make_run(sweep, 1, init="xavier", seed=0, val=(0.5, 0.7, 0.85),
             extra={"init_act_std_last": 0.8, "measured_chi1": 1.02, "meanfield_chi_1": 1.0})
    # truncated summary.json (job killed while writing without the atomic path)
    trunc = make_run(sweep, 2, init="he", seed=1, val=(0.6, 0.8, 0.9))
    text = (trunc / "summary.json").read_text()
    (trunc / "summary.json").write_text(text[: len(text) // 2])
    # an empty stray folder is not a run folder (Hydra writes .hydra/ first)
    (sweep / "3_init=random,seed=0").mkdir()
    # killed mid-way: the summary still says "running"
    running = make_run(sweep, 4, init="random", seed=1, val=(0.1,))
    s = json.loads((running / "summary.json").read_text())
    s["status"] = "running"
    (running / "summary.json").write_text(json.dumps(s))
    # only .hydra/ (killed before the summary)
    make_run(sweep, 5, init="xavier", seed=1, status="incomplete")
    # not run folders: plots/, hidden folders, files at the root
    (sweep / "plots").mkdir()
    (sweep / ".submitit").mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def test_broken_runs_are_incomplete_and_others_correct(tmp_path, make_run, caplog) -> None:
    sweep = _broken_sweep(tmp_path / "sweep", make_run)
    with caplog.at_level(logging.WARNING, logger="initlab.results.aggregate"):
        written = aggregate(sweep, plots=False)
    warned = " ".join(r.getMessage() for r in caplog.records)
    for part in ("2_init=he", "4_init=random", "5_init=xavier"):
        assert part in warned
    assert "3_init=random" not in warned
    res = pd.read_csv(written["results"]).set_index("run")
    assert len(res) == 5
    status = res["status"].to_dict()
    assert status == {
        "0_init=he,activation=relu,seed=0": "completed",
        "1_init=xavier,activation=relu,seed=0": "completed",
        "2_init=he,activation=relu,seed=1": "incomplete",
        "4_init=random,activation=relu,seed=1": "incomplete",
        "5_init=xavier,activation=relu,seed=1": "incomplete",
    }
    ok = res.loc["0_init=he,activation=relu,seed=0"]
    assert ok["init"] == "he" and ok["dataset"] == "digits" and ok["seed"] == 0
    assert ok["best_val_acc"] == pytest.approx(0.92)
    assert ok["final_val_acc"] == pytest.approx(0.92)
    assert ok["epochs_to_target"] == 3
    assert ok["test_acc"] == pytest.approx(0.92)
    xav = res.loc["1_init=xavier,activation=relu,seed=0"]
    assert pd.isna(xav["epochs_to_target"])
    assert xav["init_act_std_last"] == pytest.approx(0.8)
    assert xav["measured_chi1"] == pytest.approx(1.02)
    assert xav["meanfield_chi_1"] == pytest.approx(1.0)
    # the truncated run's axes come from .hydra/ and its error says why
    trunc = res.loc["2_init=he,activation=relu,seed=1"]
    assert trunc["init"] == "he" and trunc["seed"] == 1
    assert trunc["error_type"] == "BrokenSummary" and "summary.json" in trunc["error"]
    assert res.loc["5_init=xavier,activation=relu,seed=1", "error_type"] == "MissingSummary"
    assert "running" in res.loc["4_init=random,activation=relu,seed=1", "error"]
    # the summary counts the attributed incomplete runs in their configuration
    summ = pd.read_csv(written["summary"]).set_index("init")
    assert summ.loc["he", "n"] == 2 and summ.loc["he", "n_incomplete"] == 1
    assert summ.loc["he", "n_completed"] == 1
    assert summ.loc["he", "best_val_acc_mean"] == pytest.approx(0.92)
    assert "no readable config" not in written["report"].read_text()


def test_results_columns(basic_sweep) -> None:
    res = collect(basic_sweep)
    lead = ["run", "status", "task", "dataset", "model", "init", "activation", "optimizer",
            "seed"]
    assert list(res.columns[: len(lead)]) == lead
    for col in ("final_train_loss", "best_val_acc", "best_val_loss", "test_acc", "test_loss",
                "epochs_to_target", "diverged_step", "wall_time_s", "n_params", "error_type",
                "error", "cfg.model.depth", "cfg.optimizer.lr"):
        assert col in res, col
    assert str(res["seed"].dtype) in ("int64", "Int64")
    assert status_line(res) == "4 runs: 4 completed"


def test_varying_config_keys_lead_and_are_group_keys(tmp_path, make_run) -> None:
    sweep = tmp_path / "s"
    n = 0
    for depth in (2, 8):
        for init in ("he", "xavier"):
            make_run(sweep, n, init=init, config={"model.depth": depth}, val=(0.5, 0.6 + n / 100))
            n += 1
    res = collect(sweep)
    assert list(res.columns[9:10]) == ["cfg.model.depth"]
    summ = aggregate(sweep, plots=False)["summary"]
    s = pd.read_csv(summ)
    assert {"init", "cfg.model.depth"} <= set(s.columns) and len(s) == 4
    # ranked within each depth: only the inits compete
    assert sorted(s["rank"].tolist()) == [1, 1, 2, 2]


def test_run_dirs_skip_nested_and_plots(tmp_path, make_run) -> None:
    sweep = tmp_path / "s"
    run = make_run(sweep, 0)
    (run / "lightning_logs" / "version_0").mkdir(parents=True)
    (run / "lightning_logs" / "version_0" / "summary.json").write_text("{}")
    (sweep / "plots" / "x").mkdir(parents=True)
    (sweep / "notes").mkdir()
    (sweep / "notes" / "a.txt").write_text("not a run")
    (sweep / "stray").mkdir()  # empty: not a run either
    (sweep / "notes" / "empty").mkdir()
    assert run_dirs(sweep) == [run]


def test_empty_and_missing_sweep(tmp_path) -> None:
    from initlab.results.aggregate import NotASweepError

    with pytest.raises(NotASweepError):
        aggregate(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    written = aggregate(empty)
    assert written["results"].exists() and "No run folders" in written["report"].read_text()


def test_incomplete_run_config_from_hydra_with_interpolations(tmp_path, make_run) -> None:
    sweep = tmp_path / "s"
    make_run(sweep, 0, init="he", seed=0, config={"model.depth": 4})
    run = make_run(sweep, 1, init="he", seed=1, config={"model.depth": 4}, status="incomplete")
    cfg = run / ".hydra" / "config.yaml"
    cfg.write_text(cfg.read_text() + "out: ${hydra:runtime.output_dir}\n"
                   "width_copy: ${model.width}\n")
    res = collect(sweep).set_index("seed")
    assert res.loc[1, "status"] == "incomplete"
    assert res.loc[1, "cfg.model.depth"] == 4 and res.loc[1, "cfg.width_copy"] == 64
    assert res.loc[1, "cfg.out"] == "${hydra:runtime.output_dir}"  # the saved text
    for col in [c for c in res.columns if c.startswith("cfg.") and c in res]:
        if col not in ("cfg.width_copy", "cfg.out", "cfg.seed"):
            assert str(res.loc[0, col]) == str(res.loc[1, col]), col


@pytest.mark.parametrize("case", ["only_empty", "only_failed", "single_run", "mixed_tasks",
                                  "swept_init_gain"])
def test_odd_sweeps_do_not_crash(tmp_path, make_run, case) -> None:
    sweep = tmp_path / case
    sweep.mkdir()
    if case == "only_empty":
        (sweep / "0_a").mkdir()
        (sweep / "1_b").mkdir()
    elif case == "only_failed":
        make_run(sweep, 0, status="failed")
        make_run(sweep, 1, init="xavier", status="failed")
    elif case == "single_run":
        make_run(sweep, 0)
    elif case == "mixed_tasks":
        for seed in (0, 1):
            make_run(sweep, 2 * seed, seed=seed, val=(0.5, 0.9))
            make_run(sweep, 2 * seed + 1, seed=seed, task="regression", val=(0.9, 0.4))
    else:
        n = 0
        for gain in (0.5, 1.0, 2.0):
            for seed in (0, 1):
                make_run(sweep, n, init="he", seed=seed, config={"init.gain": gain},
                         val=(0.5, 0.8 + gain / 20 + seed / 100))
                n += 1
    written = aggregate(sweep)
    report = written["report"].read_text()
    res = pd.read_csv(written["results"])
    assert len(res) == len(run_dirs(sweep))
    if case == "mixed_tasks":
        summ = pd.read_csv(written["summary"])
        assert set(summ["rank_by"]) == {"best_val_acc", "best_val_loss"}
        assert (summ["rank"] == 1).all()  # one configuration per dataset group
        assert {"val_acc.png", "val_loss.png"} <= {p.name for p in
                                                   (sweep / "plots").iterdir()}
    if case == "swept_init_gain":
        assert "| 1 | he, init.gain=2.0 |" in report
        assert "runner-up he, init.gain=1.0" in report
    if case == "only_failed":
        assert "No configuration has a completed run" in report


def test_a_run_done_twice_counts_once(tmp_path, make_run) -> None:
    # a sweep rerun with more seeds: Hydra's job numbers shift, so seeds 0 and 1 are
    # trained again in new folders next to the old ones
    sweep = tmp_path / "sweep"
    for num, seed in enumerate((0, 1)):
        make_run(sweep, num, seed=seed, val=(0.5, 0.80 + seed / 100))
    for num, seed in enumerate((0, 1, 2), start=2):
        make_run(sweep, num, seed=seed, val=(0.5, 0.80 + seed / 100))
    make_run(sweep, 5, seed=0, status="failed")  # a failed copy never counts first
    written = aggregate(sweep)
    res = pd.read_csv(written["results"])
    assert len(res) == 6  # every folder keeps its row
    dup = res.set_index("run")["duplicate_of"].dropna().to_dict()
    assert dup == {"2_init=he,activation=relu,seed=0": "0_init=he,activation=relu,seed=0",
                   "3_init=he,activation=relu,seed=1": "1_init=he,activation=relu,seed=1",
                   "5_init=he,activation=relu,seed=0": "0_init=he,activation=relu,seed=0"}
    (row,) = pd.read_csv(written["summary"]).to_dict("records")
    assert (row["n"], row["n_completed"], row["n_failed"]) == (3, 3, 0)  # seeds 0, 1, 2
    assert row["best_val_acc_mean"] == pytest.approx(0.81)
    assert row["best_val_acc_std"] == pytest.approx(0.01)
    report = written["report"].read_text()
    assert "3 run folder(s) repeat the configuration and seed of another run" in report
    assert "3 runs: 3 completed" in report


def test_same_seed_in_another_configuration_is_not_a_duplicate(tmp_path, make_run) -> None:
    sweep = tmp_path / "sweep"
    make_run(sweep, 0, init="he", seed=0)
    make_run(sweep, 1, init="xavier", seed=0)
    make_run(sweep, 2, init="he", seed=0, config={"optimizer.lr": 0.01})
    res = pd.read_csv(aggregate(sweep, plots=False)["results"])
    assert "duplicate_of" not in res.columns and len(res) == 3


def test_duplicates_are_left_out_of_the_diagnostics_figures(tmp_path, make_run,
                                                            monkeypatch) -> None:
    from initlab.results import plots

    seen = []
    real = plots.plot_all

    def spy(sweep, results, **kwargs):
        seen.append(sorted(set(kwargs["diagnostics"]["run"])))
        return real(sweep, results, **kwargs)

    monkeypatch.setattr(plots, "plot_all", spy)
    diag = [{"index": 0, "layer": "net.0", "act_std": 1.0, "grad_std": 1.0}]
    sweep = tmp_path / "sweep"
    make_run(sweep, 0, seed=0, diagnostics=diag)
    make_run(sweep, 1, seed=1, diagnostics=diag)
    make_run(sweep, 2, seed=0, diagnostics=diag)  # seed 0 again
    aggregate(sweep)
    assert seen == [["0_init=he,activation=relu,seed=0", "1_init=he,activation=relu,seed=1"]]

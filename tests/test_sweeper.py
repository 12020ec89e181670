"""The default sweeper (``hydra/sweeper=auto``) as users run it: ``train.py -m ...``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from initlab.sweeper import vectorize_refusal
from initlab.vectorized.checks import VectorizeError, check_supported

TINY = ["trainer.max_epochs=1", "model.depth=2", "model.width=32",
        "hydra.callbacks.aggregate.plots=false"]  # plots are not under test here


def test_refusal_names_the_key_without_the_vectorized_sweeper_hint(compose_cfg) -> None:
    with pytest.raises(VectorizeError) as info:
        check_supported(compose_cfg("lr_scheduler=cosine"))
    reason = vectorize_refusal(info.value)
    assert reason.startswith("lr_scheduler='set' cannot be vectorized: allowed lr_scheduler=none")
    assert "hydra/sweeper=vectorized" not in reason


@pytest.mark.slow
def test_eligible_sweep_is_vectorized_as_the_vectorized_sweeper_does(run_train,
                                                                     tmp_path: Path) -> None:
    args = ["-m", "init=xavier,he", "seed=0,1", *TINY]
    auto = run_train([*args, f"hydra.sweep.dir={tmp_path / 'auto'}"])
    assert auto.returncode == 0, auto.stderr[-3000:]
    assert "[vectorized] 4 runs in 1 job(s)" in auto.stdout
    assert auto.stdout.count("[vectorized job ") == 1  # one job trained the four runs
    results = pd.read_csv(tmp_path / "auto" / "results.csv")
    assert len(results) == 4 and (results["status"] == "completed").all()
    for run in results["run"]:
        summary = json.loads((tmp_path / "auto" / run / "summary.json").read_text())
        assert summary["vectorized_k"] == 4 and summary["vectorized_job"] == ".vectorized/0"
    # the same run folders and numbers as hydra/sweeper=vectorized (same computation)
    vec = run_train([*args, "hydra/sweeper=vectorized", f"hydra.sweep.dir={tmp_path / 'vec'}"])
    assert vec.returncode == 0, vec.stderr[-3000:]
    expected = pd.read_csv(tmp_path / "vec" / "results.csv")
    assert list(results["run"]) == list(expected["run"])
    for col in ("final_train_loss", "final_val_acc", "best_val_acc", "test_acc"):
        assert list(results[col]) == list(expected[col]), col


@pytest.mark.slow
def test_ineligible_sweep_runs_one_job_per_run_and_says_why(run_train, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", "init=xavier,he", "lr_scheduler=cosine", *TINY, "logger=none",
                      f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[auto]")]
    assert len(lines) == 1, proc.stdout
    assert lines[0].startswith("[auto] 2 runs, one job per run (not vectorized): "
                               "lr_scheduler='set' cannot be vectorized")
    assert "[vectorized" not in proc.stdout
    assert not (sweep / ".vectorized").exists()
    results = pd.read_csv(sweep / "results.csv")
    assert sorted(results["init"]) == ["he", "xavier"]
    assert (results["status"] == "completed").all()
    for run in results["run"]:
        assert "vectorized_k" not in json.loads((sweep / run / "summary.json").read_text())


@pytest.mark.slow
def test_bad_values_are_refused_before_anything_trains(run_train, tmp_path: Path) -> None:
    # an otherwise vectorizable sweep: the checks come first, whatever the engine
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", "init=xavier,he", "optimizer.lr=0.05,abc", *TINY,
                      f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 1
    assert "2 of 4 job(s) refused before any training" in proc.stderr
    assert "optimizer.lr='abc'" in proc.stderr
    assert "[vectorized" not in proc.stdout and "[auto]" not in proc.stdout
    assert not sweep.exists()  # nothing trained, no folder made

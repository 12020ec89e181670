"""A real multirun killed with SIGKILL, then resumed with the same command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_killed_sweep_resumes_without_rerunning_finished_jobs(run_train, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", f"paths.output_root={tmp_path}", f"hydra.sweep.dir={sweep}",
            "model.depth=2", "model.width=32", "trainer.max_epochs=15",
            "init=xavier,he,random"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = None
        while proc.poll() is None:  # kill as soon as the first job has finished
            found = list(sweep.glob("0_*/summary.json"))
            if found:
                first = found[0]
                break
            time.sleep(0.05)
        assert first is not None, "the sweep ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    before = first.read_bytes()
    mtime = first.stat().st_mtime_ns
    assert not (sweep / "results.csv").exists()  # killed before the end of the sweep

    again = run_train(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert first.read_bytes() == before and first.stat().st_mtime_ns == mtime  # not re-run
    assert "already finished, skipped" in again.stdout
    results = pd.read_csv(sweep / "results.csv")
    assert sorted(results["init"]) == ["he", "random", "xavier"]
    assert (results["status"] == "completed").all()


@pytest.mark.slow
def test_a_sweep_extended_with_more_seeds_counts_each_seed_once(run_train, tmp_path: Path
                                                                 ) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", f"paths.output_root={tmp_path}", f"hydra.sweep.dir={sweep}",
            "model.depth=2", "model.width=32", "trainer.max_epochs=1", "logger=none",
            "diagnostics=off", "hydra.callbacks.aggregate.plots=false", "init=xavier,he"]
    run_train([*args, "seed=0,1"], check=True)
    run_train([*args, "seed=0,1,2"], check=True)
    # he's jobs moved from 2, 3 to 3, 4: seeds 0 and 1 of he ran again in new folders
    # (xavier's 0 and 1 kept their job numbers and were skipped)
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) == 8 and (results["status"] == "completed").all()
    dup = results.dropna(subset=["duplicate_of"]).sort_values("run")
    assert [r.split("_")[0] for r in dup["run"]] == ["3", "4"]
    assert [r.split("_")[0] for r in dup["duplicate_of"]] == ["2", "3"]
    assert list(dup["init"]) == ["he", "he"] and list(dup["seed"]) == [0, 1]
    summary = pd.read_csv(sweep / "summary.csv")
    assert sorted(summary["n"]) == [3, 3]  # three seeds each, none counted twice

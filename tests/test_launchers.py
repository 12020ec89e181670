"""Scale-out presets: joblib (local parallel) and submitit (SLURM, run here locally)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from initlab.distributed import worker_threads

CONF = Path(__file__).resolve().parents[1] / "conf"
TINY = ["trainer.max_epochs=1", "model.depth=2", "model.width=32"]


def hydra_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True).hydra


def test_slurm_preset_has_the_usual_knobs() -> None:
    launcher = hydra_cfg("hydra/launcher=slurm", "hydra.launcher.partition=gpu").launcher
    assert "submitit" in launcher._target_ and "Slurm" in launcher._target_
    assert launcher.partition == "gpu"
    for key in ("gpus_per_node", "timeout_min", "mem_gb", "array_parallelism", "cpus_per_task"):
        assert key in launcher, key


def test_local_parallel_preset_is_joblib_with_two_workers() -> None:
    launcher = hydra_cfg("hydra/launcher=local_parallel").launcher
    assert "joblib" in launcher._target_.lower() and launcher.n_jobs == 2


def test_worker_threads_split_the_cores() -> None:
    class Joblib:
        _target_ = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
        n_jobs = 2

    cores = os.cpu_count() or 1
    assert worker_threads(None, Joblib()) == max(1, cores // min(2, cores))
    assert worker_threads(3, Joblib()) == 3  # an explicit `threads=` wins
    assert worker_threads(None, None) is None  # basic launcher: torch's default

    class Submitit:  # SLURM or local: the cores the job was given
        _target_ = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
        cpus_per_task = 4

    assert worker_threads(None, Submitit()) == 4
    assert worker_threads(2, Submitit()) == 2


@pytest.mark.slow
def test_submitit_local_sweep_runs_jobs_through_submitit(run_train, tmp_path: Path) -> None:
    # hydra/sweeper=checked: one job per run (auto would vectorize both runs into one job)
    proc = run_train(["-m", "hydra/launcher=submitit_local_preset", "hydra/sweeper=checked",
                      f"paths.output_root={tmp_path}", *TINY, "init=he,xavier"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = list((tmp_path / "multirun").iterdir())
    # submitit's own bookkeeping: one folder per job with its pickled result and log
    job_dirs = [p for p in (sweep / ".submitit").iterdir() if p.is_dir() and p.name.isdigit()]
    assert len(job_dirs) == 2
    assert all(list(d.glob("*_result.pkl")) for d in job_dirs)
    results = pd.read_csv(sweep / "results.csv")
    assert sorted(results["init"]) == ["he", "xavier"]
    assert (results["status"] == "completed").all()
    for run in results["run"]:  # the preset's cpus_per_task: 1
        assert json.loads((sweep / run / "summary.json").read_text())["torch_threads"] == 1


@pytest.mark.slow
def test_joblib_sweep_limits_threads_per_worker(run_train, tmp_path: Path) -> None:
    proc = run_train(["-m", "hydra/launcher=local_parallel", "hydra/sweeper=checked",
                      f"paths.output_root={tmp_path}", *TINY, "init=he,xavier"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = list((tmp_path / "multirun").iterdir())
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) == 2 and (results["status"] == "completed").all()
    cores = os.cpu_count() or 1
    for run in results["run"]:
        s = json.loads((sweep / run / "summary.json").read_text())
        assert s["torch_threads"] == max(1, cores // min(2, cores))

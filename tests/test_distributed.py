"""Lightning DDP inside Hydra jobs, for real: 2 CPU processes over gloo."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

TINY = ["trainer.max_epochs=1", "model.depth=2", "model.width=32"]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


@pytest.mark.slow
def test_ddp_single_run_writes_one_summary_from_rank_zero(run_train, tmp_path: Path) -> None:
    proc = run_train([f"paths.output_root={tmp_path}", *TINY, *DDP])
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1  # the child rank wrote into the same folder, not a new one
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["config"]["trainer.strategy"] == "ddp"
    assert proc.stdout.count("run completed") == 1  # printed by rank zero only
    # each rank saw half of the 1,257 training examples per epoch
    assert summary["steps"] == -(-(1257 // 2) // 64)


@pytest.mark.slow
def test_ddp_multirun_one_folder_per_job(run_train, tmp_path: Path) -> None:
    proc = run_train(["-m", f"paths.output_root={tmp_path}", *TINY, *DDP, "init=he,xavier"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = list((tmp_path / "multirun").iterdir())
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name != "plots")
    assert len(jobs) == 2 and jobs[0].startswith("0_") and jobs[1].startswith("1_")
    assert not (tmp_path / "runs").exists()  # children did not make folders of their own
    ddp = pd.read_csv(sweep / "results.csv")
    assert sorted(ddp["init"]) == ["he", "xavier"] and (ddp["status"] == "completed").all()
    # the same results.csv shape as a single-device sweep
    # a single-device sweep of ordinary runs, as the DDP sweep is (not vectorized)
    single = run_train(["-m", "hydra/sweeper=checked", f"paths.output_root={tmp_path / 'single'}",
                        *TINY, "init=he,xavier"])
    assert single.returncode == 0, single.stderr[-3000:]
    (ssweep,) = list((tmp_path / "single" / "multirun").iterdir())
    base = pd.read_csv(ssweep / "results.csv")
    assert len(base) == len(ddp)
    extra = {"cfg.trainer.strategy"}  # the one key only the DDP config has
    assert set(ddp.columns) - extra == set(base.columns)


@pytest.mark.slow
def test_ddp_divergence_is_decided_on_the_runs_loss_by_every_rank(run_train,
                                                                   tmp_path: Path) -> None:
    # step 0's shard losses are about 2.717 (rank 0) and 2.785 (rank 1), their mean 2.751:
    # with max_loss 2.75 only rank 1 used to stop, and rank 0 died in a collective
    run_dir = tmp_path / "run"
    proc = run_train([f"hydra.run.dir={run_dir}", *TINY, *DDP,
                      "optimizer.lr=0.6", "max_loss=2.75"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged", (summary.get("error"), proc.stderr[-2000:])
    assert summary["diverged_step"] == 0
    assert 2.75 < float(summary["error"].split("became ")[1].split()[0]) < 2.76


@pytest.mark.slow
def test_ddp_children_compose_the_same_config_name(run_train, tmp_path: Path) -> None:
    # --config-name: rank 1 composed the default config (width 128) and failed to match
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "narrow.yaml").write_text("defaults:\n  - config\n  - _self_\nmodel:\n  width: 24\n")
    run_dir = tmp_path / "run"
    proc = run_train([f"--config-dir={conf}", "--config-name=narrow",
                      f"hydra.run.dir={run_dir}", "trainer.max_epochs=1", "model.depth=2",
                      *DDP])
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["config"]["model.width"] == 24


@pytest.mark.slow
def test_a_ddp_job_leaves_the_next_jobs_threads_alone(run_train, tmp_path: Path) -> None:
    # Lightning set torch's threads to cores // processes for the DDP job; the next
    # single-device job of the sweep inherited them
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", f"hydra.sweep.dir={sweep}", *TINY, "trainer.accelerator=cpu",
                      "trainer=default,ddp,default", "hydra.callbacks.aggregate.plots=false"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    threads = {}
    for run in sorted(p for p in sweep.iterdir() if (p / "summary.json").is_file()):
        threads[run.name.split("_")[0]] = json.loads((run / "summary.json").read_text())[
            "torch_threads"]
    assert threads["0"] == threads["2"]


@pytest.mark.slow
def test_ddp_under_the_joblib_launcher_fails_each_job_clearly(run_train, tmp_path: Path
                                                              ) -> None:
    # a joblib worker cannot start DDP processes (it relaunched the worker module, and
    # the sweep died with TerminatedWorkerError): each job is a failed run naming the keys
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", "hydra/launcher=local_parallel", f"hydra.sweep.dir={sweep}",
                      *TINY, *DDP, "init=he,xavier", "hydra.callbacks.aggregate.plots=false"])
    assert proc.returncode != 0  # failed jobs make the sweep exit non-zero, at the end
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) == 2 and (results["status"] == "failed").all()
    assert results["error"].str.contains("trainer.strategy='ddp' is not allowed under "
                                         "hydra/launcher=local_parallel").all()

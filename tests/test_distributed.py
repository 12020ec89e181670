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
    single = run_train(["-m", f"paths.output_root={tmp_path / 'single'}", *TINY,
                        "init=he,xavier"])
    assert single.returncode == 0, single.stderr[-3000:]
    (ssweep,) = list((tmp_path / "single" / "multirun").iterdir())
    base = pd.read_csv(ssweep / "results.csv")
    assert len(base) == len(ddp)
    extra = {"cfg.trainer.strategy"}  # the one key only the DDP config has
    assert set(ddp.columns) - extra == set(base.columns)

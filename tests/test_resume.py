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

"""scripts/aggregate.py as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "aggregate.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, env=env, cwd=ROOT)


def test_cli_rebuilds_everything(basic_sweep, make_run, png_ok) -> None:
    make_run(basic_sweep, 4, init="random", seed=0, status="diverged", val=(0.1, 0.1))
    make_run(basic_sweep, 5, init="random", seed=1, status="incomplete")  # only .hydra/
    (basic_sweep / "6_stray").mkdir()  # an empty folder is no run
    proc = _run(str(basic_sweep), "--heatmap-axes", "init", "activation")
    assert proc.returncode == 0, proc.stderr
    assert "6 runs: 4 completed, 1 diverged, 1 incomplete" in proc.stdout
    assert "WARNING" in proc.stderr and "5_init=random,activation=relu,seed=1" in proc.stderr
    assert "6_stray" not in proc.stderr
    for name in ("results.csv", "summary.csv", "report.md"):
        assert (basic_sweep / name).is_file()
        assert str(basic_sweep / name) in proc.stdout
    assert len(pd.read_csv(basic_sweep / "results.csv")) == 6
    assert png_ok(basic_sweep / "plots" / "heatmap.png")


def test_cli_errors_are_clear(tmp_path, basic_sweep) -> None:
    proc = _run(str(tmp_path / "missing"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    f = tmp_path / "file.txt"
    f.write_text("x")
    proc = _run(str(f))
    assert proc.returncode == 2 and "is not a folder" in proc.stderr
    empty = tmp_path / "empty"
    (empty / "stuff").mkdir(parents=True)
    (empty / "stuff" / "notes.txt").write_text("x")
    proc = _run(str(empty))
    assert proc.returncode == 2 and "is not a sweep folder" in proc.stderr
    run = next(p for p in basic_sweep.iterdir() if p.name.startswith("0_"))
    proc = _run(str(run))
    assert proc.returncode == 2 and "is a single run folder" in proc.stderr
    proc = _run(str(basic_sweep), "--no-plots", "--heatmap-axes", "init", "nope")
    assert proc.returncode == 0  # no plots: the axes are not used
    proc = _run(str(basic_sweep), "--heatmap-axes", "init", "nope")
    assert proc.returncode == 2 and "unknown axis 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr

"""Run a named experiment (conf/experiment/) as the real one-command multirun, on reduced
settings, and hand its results.csv to the test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest


def run_experiment(run_train: Callable, tmp_path: Path, name: str, *overrides: str
                   ) -> pd.DataFrame:
    """``python train.py -m experiment=NAME ...`` in a subprocess; the sweep's results.csv.
    One torch thread per job: on a busy shared CPU, two intra-op threads spin-wait on each
    other and a run takes about twice as long."""
    proc = run_train(["-m", f"experiment={name}", f"paths.output_root={tmp_path}",
                      "logger=none", "threads=1", *overrides])
    log = f"\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"experiment={name} failed ({proc.returncode}){log}"
    found = sorted(tmp_path.glob("multirun/*/results.csv"))
    assert len(found) == 1, f"expected one results.csv under {tmp_path}, got {found}{log}"
    results = pd.read_csv(found[0])
    assert (results["status"] != "failed").all(), results[["run", "status", "error"]]
    return results


@pytest.fixture
def experiment(run_train: Callable, tmp_path: Path) -> Callable[..., pd.DataFrame]:
    """``experiment("he2015_depth", "seed=0")`` -> results.csv of that sweep."""
    return lambda name, *overrides: run_experiment(run_train, tmp_path, name, *overrides)


"""SIGTERM and run-folder locks, with real ``train.py`` processes (single runs and sweeps)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from initlab.runguard import EXIT_INTERRUPTED, LOCK_FILE, RunLock

ROOT = Path(__file__).resolve().parents[1]
FAST = ["model.depth=2", "model.width=32", "logger=none", "diagnostics=off",
        "hydra.callbacks.aggregate.plots=false", "checkpoint=true"]


def start_train(args: list[str], out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"),
                                                        os.environ.get("PYTHONPATH", "")]),
               MPLBACKEND="Agg")
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], env=env,
                            stdout=open(out, "w"), stderr=subprocess.STDOUT, text=True)


def wait_for(proc: subprocess.Popen, pattern: str, base: Path) -> Path:
    """The first file matching ``pattern`` under ``base`` once it exists (the process
    must still be running then)."""
    while True:
        found = sorted(base.glob(pattern))
        if found:
            return found[0]
        assert proc.poll() is None, "the command ended before the awaited file appeared"
        time.sleep(0.05)


@contextlib.contextmanager
def terminated_after(proc: subprocess.Popen) -> Iterator[None]:
    """Run the block while ``proc`` runs, then send it SIGTERM and wait for it to end
    (killed instead if the block fails)."""
    try:
        yield
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def ckpt_epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def test_lock_is_exclusive_and_dies_with_its_process(tmp_path: Path) -> None:
    held = RunLock.acquire(tmp_path)
    assert isinstance(held, RunLock)
    other = RunLock.acquire(tmp_path)  # another open file: flock refuses it, even here
    assert other == f"pid {os.getpid()} on {os.uname().nodename}"
    held.release()
    again = RunLock.acquire(tmp_path)
    assert isinstance(again, RunLock)
    again.release()
    # a process killed with SIGKILL while holding the lock: the OS releases it
    code = ("import sys, time; from initlab.runguard import RunLock; "
            f"RunLock.acquire({str(tmp_path)!r}); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    try:
        assert proc.stdout.readline().strip() == "held"
        assert RunLock.acquire(tmp_path) == f"pid {proc.pid} on {os.uname().nodename}"
    finally:
        proc.kill()
        proc.wait()
    assert isinstance(RunLock.acquire(tmp_path), RunLock)


@pytest.mark.slow
def test_sigterm_interrupts_a_single_run_which_a_rerun_continues(run_train,
                                                                tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = [f"hydra.run.dir={run_dir}", *FAST, "trainer.max_epochs=400"]
    proc = start_train(args, tmp_path / "a.out")
    with terminated_after(proc):
        ckpt = wait_for(proc, "checkpoints/last.ckpt", run_dir)
        # the same command on the same folder while it trains: refused, nothing written
        twin = run_train(args)
        assert twin.returncode == 1
        assert f"run folder {run_dir} is in use by pid {proc.pid}" in twin.stderr
    out = (tmp_path / "a.out").read_text()
    assert proc.returncode == EXIT_INTERRUPTED == 143, out[-3000:]
    assert "run interrupted (SIGTERM)" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["error_type"] == "Interrupted"
    assert (run_dir / LOCK_FILE).read_text().startswith(f"pid {proc.pid} ")

    done_epochs = ckpt_epoch(ckpt) + 1  # epochs the checkpoint holds (epoch counts from 0)
    target = done_epochs + 2
    again = run_train([f"hydra.run.dir={run_dir}", *FAST, f"trainer.max_epochs={target}"])
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["resumed_from"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert summary["epochs_run"] == target
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == list(range(1, target + 1))


@pytest.mark.slow
def test_sigterm_stops_a_sweep_which_aggregates_and_resumes(run_train, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # trainer.max_epochs is left out of the folder names, so the rerun may ask for fewer
    # epochs of the killed job (a checkpoint may be continued by a run of another length)
    common = ["-m", f"hydra.sweep.dir={sweep}", *FAST,
              "hydra.job.config.override_dirname.exclude_keys=[trainer.max_epochs]"]
    proc = start_train([*common, "trainer.max_epochs=2,400"], tmp_path / "a.out")
    with terminated_after(proc):
        ckpt = wait_for(proc, "1_*/checkpoints/last.ckpt", sweep)
        # the identical command while the first trains job 2: it trains neither job
        twin = run_train([*common, "trainer.max_epochs=2,400"])
    out = (tmp_path / "a.out").read_text()
    assert proc.returncode == 143, out[-3000:]
    assert "trainer.max_epochs=400: interrupted (SIGTERM" in out
    assert "sweep interrupted by signal 15" in out
    assert twin.returncode == 0, twin.stderr[-3000:]
    assert "trainer.max_epochs=2: completed (already finished, skipped)" in twin.stdout
    assert (f"trainer.max_epochs=400: skipped: running elsewhere (pid {proc.pid} "
            in twin.stdout)

    results = pd.read_csv(sweep / "results.csv")  # written by the interrupted sweep
    rows = results.set_index(results["run"].str.split("_").str[0])
    assert rows.loc["0", "status"] == "completed"
    assert rows.loc["1", "status"] == "incomplete"  # neither completed nor failed
    assert rows.loc["1", "error_type"] == "Interrupted"
    job1 = ckpt.parents[1]
    assert json.loads((job1 / "summary.json").read_text())["status"] == "interrupted"

    target = ckpt_epoch(job1 / "checkpoints" / "last.ckpt") + 3
    again = run_train([*common, f"trainer.max_epochs=2,{target}"])
    assert again.returncode == 0, again.stderr[-3000:]
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) == 2 and (results["status"] == "completed").all()
    summary = json.loads((job1 / "summary.json").read_text())
    assert summary["resumed_from"] and summary["epochs_run"] == target


@pytest.mark.slow
def test_sigterm_interrupts_a_vectorized_job_whose_folders_are_locked(run_train,
                                                                      tmp_path: Path) -> None:
    """The default sweeper trains init x seed as one vectorized job: SIGTERM while it
    trains records every member as interrupted (resumable) and the sweep aggregates and
    exits 143; while it trains, the same command leaves its members alone (locked
    folders); a rerun trains them."""
    sweep = tmp_path / "sweep"
    common = ["-m", f"hydra.sweep.dir={sweep}", *FAST[:-1], "init=he,xavier", "seed=0",
              "hydra.job.config.override_dirname.exclude_keys=[trainer.max_epochs]"]
    out = tmp_path / "a.out"
    proc = start_train([*common, "trainer.max_epochs=1000"], out)
    with terminated_after(proc):
        while "epoch 2/1000" not in out.read_text():  # the members are training
            assert proc.poll() is None, out.read_text()[-3000:]
            time.sleep(0.05)
        twin = run_train([*common, "trainer.max_epochs=1000"])
    text = out.read_text()
    assert proc.returncode == 143, text[-3000:]
    assert text.count("interrupted (SIGTERM; a rerun of the command continues it)") == 2
    assert "sweep interrupted by signal 15" in text
    assert twin.returncode == 0, twin.stderr[-3000:]
    assert twin.stdout.count(f"skipped: running elsewhere (pid {proc.pid} ") == 2

    results = pd.read_csv(sweep / "results.csv")  # written by the interrupted sweep
    assert list(results["status"]) == ["incomplete"] * 2
    assert list(results["error_type"]) == ["Interrupted"] * 2
    for run_dir in sorted(p for p in sweep.iterdir() if p.name[0].isdigit()):
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "interrupted" and summary["vectorized_k"] == 2
        assert summary["epochs_run"] >= 1  # the epochs that finished are in its history

    again = run_train([*common, "trainer.max_epochs=2"])
    assert again.returncode == 0, again.stderr[-3000:]
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) == 2 and (results["status"] == "completed").all()
    assert (results["epochs_run"] == 2).all()

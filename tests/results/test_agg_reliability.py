"""Aggregation on damaged or unusual sweep folders: read-only folders, missing history
files, stray folders, saved configs with environment interpolations."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from initlab.results.aggregate import SweepWriteError, aggregate, collect, run_dirs

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "aggregate.py"
PR_CAPBSET_DROP = 24
# root writes through permission bits with these capabilities (capabilities(7))
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3


def _as_an_ordinary_user() -> None:
    """In the child, before exec: for root, drop the capabilities that let it ignore a
    folder's mode, so a 0555 folder is read-only to it as to anyone else (other users
    need nothing: the mode already binds them)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _script(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, preexec_fn=_as_an_ordinary_user)


def test_read_only_sweep_folder_gives_one_line_and_exit_status_3(basic_sweep) -> None:
    basic_sweep.chmod(0o555)
    try:
        # the premise: this process's children cannot write there (root included)
        probe = subprocess.run([sys.executable, "-c",
                                f"open({str(basic_sweep / 'x')!r}, 'w')"],
                               capture_output=True, preexec_fn=_as_an_ordinary_user)
        assert probe.returncode != 0 and b"PermissionError" in probe.stderr
        proc = _script(str(basic_sweep))
    finally:
        basic_sweep.chmod(0o755)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert str(basic_sweep) in line and "results.csv" in line
    assert "Permission denied" in line
    assert not (basic_sweep / "results.csv").exists()
    help_text = _script("--help").stdout
    assert "Exit status" in help_text and "3 an output could not be written" in help_text


def test_a_file_where_the_plots_folder_goes_is_a_write_error(basic_sweep) -> None:
    # fails for root too: no permission bit is involved
    (basic_sweep / "plots").write_text("not a folder")
    with pytest.raises(SweepWriteError) as err:
        aggregate(basic_sweep)
    assert f"cannot write plots/ into the sweep folder {basic_sweep}" in err.value.strerror
    proc = _script(str(basic_sweep))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "plots/" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_deleted_history_is_reported_and_the_plots_still_drawn(basic_sweep, png_ok) -> None:
    gone = sorted(basic_sweep.iterdir())[1]
    (gone / "history.csv").unlink()
    written = aggregate(basic_sweep)
    res = pd.read_csv(written["results"]).set_index("run")
    assert res.loc[gone.name, "status"] == "completed"  # summary.json has its numbers
    assert "history.csv is missing" in res.loc[gone.name, "warning"]
    assert res["warning"].notna().sum() == 1
    report = written["report"].read_text()
    assert "### Runs with warnings" in report and gone.name in report
    assert png_ok(basic_sweep / "plots" / "val_acc.png")


def test_an_empty_history_file_is_reported(basic_sweep) -> None:
    run = sorted(basic_sweep.iterdir())[0]
    (run / "history.csv").write_text("")
    res = collect(basic_sweep).set_index("run")
    assert "no header row" in res.loc[run.name, "warning"]


def test_empty_stray_folders_are_not_runs(basic_sweep) -> None:
    (basic_sweep / "stray").mkdir()
    (basic_sweep / "9_killed_before_hydra").mkdir()
    assert len(run_dirs(basic_sweep)) == 4
    written = aggregate(basic_sweep, plots=False)
    res = pd.read_csv(written["results"])
    assert len(res) == 4 and (res["status"] == "completed").all()
    assert "4 runs: 4 completed." in written["report"].read_text()


def test_saved_env_interpolations_are_shown_as_saved_not_resolved(
        tmp_path, make_run, monkeypatch) -> None:
    # the job saw DATA=/job/data; whoever aggregates has another environment
    monkeypatch.setenv("INITLAB_TEST_DATA", "/reader/data")
    sweep = tmp_path / "sweep"
    make_run(sweep, 0, seed=0)
    run = make_run(sweep, 1, seed=1, status="incomplete")  # config from .hydra/ only
    cfg = run / ".hydra" / "config.yaml"
    cfg.write_text(cfg.read_text() + "data_dir: ${oc.env:INITLAB_TEST_DATA}\n"
                   "sub: ${data_dir}/digits\nwidth_copy: ${model.width}\n")
    written = aggregate(sweep, plots=False)
    text = written["results"].read_text()
    assert "/reader/data" not in text
    res = pd.read_csv(written["results"]).set_index("seed")
    assert res.loc[1, "cfg.data_dir"] == "${oc.env:INITLAB_TEST_DATA}"
    assert res.loc[1, "cfg.sub"] == "${oc.env:INITLAB_TEST_DATA}/digits"
    assert res.loc[1, "cfg.width_copy"] == 64  # a plain reference: the saved config's value
    # the saved text is not a swept value: both runs stay in one configuration
    summary = pd.read_csv(written["summary"])
    assert len(summary) == 1 and summary.loc[0, "n"] == 2
    # unset in the reader's environment: the same, no error
    monkeypatch.delenv("INITLAB_TEST_DATA")
    assert collect(sweep).set_index("seed").loc[1, "cfg.data_dir"] == \
        "${oc.env:INITLAB_TEST_DATA}"


def test_end_of_sweep_write_error_is_one_line(basic_sweep) -> None:
    from omegaconf import OmegaConf

    from initlab.results.callback import AggregateSweep

    (basic_sweep / "plots").write_text("not a folder")
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(basic_sweep)}}})
    with pytest.raises(SystemExit) as err:
        AggregateSweep().on_multirun_end(cfg)
    msg = str(err.value.code)
    assert "cannot write plots/" in msg and str(basic_sweep) in msg and "\n" not in msg

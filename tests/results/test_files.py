"""Run files: the CSV writer's output is what pandas wrote before it."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from initlab.results.files import csv_text, write_csv

ROWS = [
    {"epoch": 1, "step": 20, "train_loss": 0.1 + 1e-17, "train_acc": 0.5,
     "val_loss": float("nan"), "lr": 0.05, "time_s": 0.0123},
    {"epoch": 2, "step": 40, "train_loss": np.float64(1e-5), "val_acc": np.float32(0.25),
     "note": 'a,"b"', "flag": True, "big": 1e300, "inf": float("-inf")},
    {"epoch": 3, "step": np.int64(60), "train_loss": -0.0, "val_acc": torch.tensor(0.75).item()},
]


def test_csv_text_is_what_dataframe_to_csv_writes() -> None:
    # NaN and missing cells empty, floats round-tripping, quoting, column order
    assert csv_text(ROWS) == pd.DataFrame(ROWS).to_csv(index=False)


def test_written_history_reads_back_as_its_rows(tmp_path: Path) -> None:
    rows = [{"epoch": 1, "val_acc": None}, {"epoch": 2, "val_acc": 0.5, "extra": 7}]
    path = write_csv(tmp_path / "history.csv", rows)
    back = pd.read_csv(path)
    assert list(back.columns) == ["epoch", "val_acc", "extra"]
    assert back["epoch"].tolist() == [1, 2]
    assert np.isnan(back.at[0, "val_acc"]) and back.at[1, "val_acc"] == 0.5
    assert np.isnan(back.at[0, "extra"]) and back.at[1, "extra"] == 7
    # an int column with a gap: "7" here where pandas wrote "7.0"; both read back as 7.0
    assert path.read_text().splitlines()[2] == "2,0.5,7"


@pytest.mark.parametrize("value", [float("nan"), np.float32("nan"), None])
def test_missing_values_are_empty_cells(value: object) -> None:
    assert csv_text([{"a": 1, "b": value}]).splitlines()[1] == "1,"


def test_dataframes_are_written_by_pandas(tmp_path: Path) -> None:
    frame = pd.DataFrame({"run": ["x", "y"], "best_val_acc": [0.9, np.nan]})
    path = write_csv(tmp_path / "results.csv", frame)
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(path.read_text())), frame)


def test_no_rows_gives_the_header_so_the_file_reads_as_an_empty_table(tmp_path) -> None:
    # a run that diverged in its first epoch has no history rows
    path = write_csv(tmp_path / "history.csv", [], ("epoch", "step", "train_loss"))
    frame = pd.read_csv(path)
    assert frame.empty and list(frame.columns) == ["epoch", "step", "train_loss"]
    assert csv_text([{"a": 1}], ("x",)) == "a\n1\n"  # rows decide the columns when given


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):  # noqa: ANN201
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _plain_open_mode(folder: Path) -> int:
    probe = folder / "plain.txt"
    with open(probe, "w") as f:
        f.write("x")
    mode = stat.S_IMODE(probe.stat().st_mode)
    probe.unlink()
    return mode


def test_run_and_sweep_files_get_the_mode_open_gives_under_the_umask(
        tmp_path: Path, umask: int, make_run) -> None:
    # a shared results folder: others must read what the umask lets them (0600 before)
    from initlab.results.aggregate import aggregate
    from initlab.results.files import current_umask, write_json

    assert current_umask() == umask
    expected = 0o666 & ~umask
    assert _plain_open_mode(tmp_path) == expected
    run = tmp_path / "run"
    written = [write_json(run / "summary.json", {"status": "completed"}),
               write_csv(run / "history.csv", [{"epoch": 1, "val_acc": 0.5}])]
    sweep = tmp_path / "sweep"
    make_run(sweep, 0)
    make_run(sweep, 1, init="xavier")
    out = aggregate(sweep, plots=False)
    written += [out["results"], out["summary"], out["report"]]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert current_umask() == umask  # reading it did not change it

"""Atomic writes of run outputs (temp file in the same folder + ``os.replace``).

Readers (aggregation, resume, a user's script) see either the old file or the whole new
one. The writes are not fsync'ed: after a power loss a just-written file may be empty,
and an unreadable summary already counts as an unfinished run (resume reruns it,
aggregation lists it as incomplete). An fsync per file would cost each run about a
millisecond on a local disk and far more on a cluster's network file system.

The files get the mode a plain ``open(path, "w")`` would give them, ``0o666 & ~umask``
(``mkstemp`` alone makes them 0600: other users of a shared results folder could not read
them).
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.csv"


def current_umask() -> int:
    """The process's umask. Read from /proc on Linux (setting it to read it back would
    change it for a moment for every thread); elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` so readers see either the old file or the whole new one; the file's
    mode is ``0o666 & ~umask``, as ``open(path, "w")`` would make it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # not on Windows, where mkstemp's mode is not 0600
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _jsonable(value.item())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    return atomic_write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def _cell(value: Any) -> Any:
    """A CSV cell as ``DataFrame.to_csv`` writes it: missing and NaN empty, floats in
    their shortest round-tripping form (``csv`` writes a float's repr)."""
    kind = type(value)
    if kind is float:
        return "" if value != value else value  # NaN is the only float unequal to itself
    if kind in (int, str, bool):
        return value
    if value is None:
        return ""
    if isinstance(value, numbers.Integral):  # numpy and torch scalars
        return int(value)
    if isinstance(value, numbers.Real):
        return _cell(float(value))
    return value


def csv_text(rows: Iterable[dict[str, Any]], empty_columns: Sequence[str] = ()) -> str:
    """The CSV of ``rows`` (columns in order of first appearance, missing cells empty),
    read back by ``pd.read_csv`` as ``pd.DataFrame(rows)``; without rows, the header
    ``empty_columns`` (so that the file still reads as an empty table). Written with the
    ``csv`` module: building and formatting a DataFrame for a run's 10-row history took
    0.2-0.3 ms, more than the rest of the write."""
    rows = list(rows)
    columns = list(dict.fromkeys(key for row in rows for key in row)) or list(empty_columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)
    return buf.getvalue()


def write_csv(path: str | Path, rows: Iterable[dict[str, Any]] | pd.DataFrame,
              empty_columns: Sequence[str] = ()) -> Path:
    """``rows`` (dicts, see ``csv_text``, or a DataFrame) as a CSV file, atomically."""
    text = (rows.to_csv(index=False) if isinstance(rows, pd.DataFrame)
            else csv_text(rows, empty_columns))
    return atomic_write_text(path, text)


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """Load a run's summary.json (raises on missing or truncated files)."""
    with open(Path(run_dir) / SUMMARY_FILE, encoding="utf-8") as f:
        return json.load(f)

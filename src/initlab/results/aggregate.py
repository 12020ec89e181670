"""Sweep folder -> results.csv (one row per run), summary.csv (over seeds), plots/, report.md.

A *run folder* is any folder under the sweep folder that holds ``.hydra/`` or
``summary.json`` (its sub-folders are not searched further).  Other folders (an empty
stray folder, notes), hidden folders and ``plots/`` are never run folders.  A run folder
without a readable, finished ``summary.json`` is listed as ``incomplete`` with a
warning; aggregation never raises because of one.  A finished run whose summary names a
``history.csv`` that is missing or unreadable keeps its status and gets a ``warning``
(its learning curves are left out of the plots).

Rules (also in docs/results.md):

* ``summary.csv`` groups runs by every configuration key except the seed.  The
  training metrics are computed over the ``completed`` runs only (a diverged run's
  last numbers describe a broken run); the ``init_*`` / ``*_chi1`` diagnostics are
  measured before training and averaged over every run that has them.
  ``epochs_to_target`` is averaged over the completed runs that reached the target
  (``n_reached_target`` says how many did).
* Configurations are ranked against each other within each (dataset, model,
  activation) group - and within each value of any other swept non-init key
  (optimizer, depth, lr, ...) - so that only the init settings compete: by mean best
  validation accuracy, highest first (regression: mean best validation loss, lowest
  first).  Configurations without a completed run get no rank.
* Two run folders with the same configuration, seed included, are one run done twice
  (e.g. a sweep rerun with more seeds: Hydra's job numbers shift, so finished runs are
  trained again in new folders).  Both keep their row in results.csv; the second (in
  folder order, after the finished ones) gets ``duplicate_of`` = the first's folder and
  is left out of summary.csv, the plots and the report's statistics, so that a seed is
  never counted twice.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from initlab.config import AXES
from initlab.results.files import SUMMARY_FILE, atomic_write_text, write_csv
from initlab.results.stats import ci95_halfwidths

log = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
SEED_SUMMARY_FILE = "summary.csv"
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
STATUSES = ("completed", "diverged", "failed", "incomplete")
FINISHED = ("completed", "diverged", "failed")
AXES_NO_SEED = tuple(a for a in AXES if a != "seed")
LEAD_COLUMNS = ["run", "status", "task", *AXES]

# Per-run training metrics, in results.csv order.
METRICS = [
    "final_train_loss", "best_train_loss", "final_train_acc",
    "final_val_loss", "best_val_loss", "final_val_acc", "best_val_acc", "best_epoch",
    "test_loss", "test_acc", "epochs_to_target", "epochs_run",
]
RUN_FACTS = ["diverged_step", "diverged_epoch", "steps", "fit_time_s", "ms_per_step",
             "wall_time_s", "n_params"]
ERROR_COLUMNS = ["error_type", "error", "warning"]
# Init diagnostics: top-level scalars with these prefixes, plus these exact keys.
DIAG_PREFIXES = ("init_", "meanfield_")
DIAG_KEYS = ("measured_chi1", "mean_sq_singular_value", "max_singular_value",
             "min_singular_value")
# Metrics summarized over seeds (completed runs only), then the timing.
SUMMARY_METRICS = [
    "best_val_acc", "final_val_acc", "test_acc", "final_train_acc",
    "best_val_loss", "final_val_loss", "test_loss", "best_train_loss", "final_train_loss",
    "epochs_to_target", "best_epoch", "wall_time_s",
    # dead units after training (TrainingDiagnostics), against init_dead_frac_* at init
    "final_dead_frac_max", "final_dead_frac_mean",
]
# Summary keys that are not results columns (nested or bulky).
SKIPPED_KEYS = frozenset({"config", "init_diagnostics", "traceback", "history", "data",
                          "overrides", "run_name"})
# Config keys that repeat an axis (or the seed).
MIRROR_KEYS = frozenset({"cfg.init.scheme", "cfg.activation.name", "cfg.seed"})
INT_COLUMNS = frozenset({"seed", "best_epoch", "epochs_to_target", "epochs_run", "steps",
                         "diverged_step", "diverged_epoch", "n_params"})


class NotASweepError(ValueError):
    """The folder does not exist or holds no run folder."""


class SweepWriteError(OSError):
    """An output of the aggregation could not be written (a read-only sweep folder, a
    full disk, a file where the ``plots`` folder should be); the message names the
    folder and the file."""


def _writing(sweep: Path, what: str, write: Any) -> Any:
    """``write()``, with an OSError turned into a one-line ``SweepWriteError``."""
    try:
        return write()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise SweepWriteError(exc.errno, f"cannot write {what} into the sweep folder "
                                         f"{sweep}: {reason}") from exc


# --------------------------------------------------------------------------- scanning


def _job_num(path: Path) -> int:
    head = path.name.split("_", 1)[0]
    return int(head) if head.isdigit() else 1 << 30


def run_dirs(sweep_dir: str | Path) -> list[Path]:
    """Run folders of a sweep (see the module docstring), in job order."""
    root = Path(sweep_dir)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here != root and (".hydra" in dirnames or SUMMARY_FILE in filenames):
            found.append(here)
            dirnames[:] = []  # a run's own sub-folders (TensorBoard, .hydra) are not runs
            continue
        # an empty folder is not a run: Hydra writes .hydra/ before the job starts
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and not (here == root and d == PLOTS_DIR)]
    return sorted(found, key=lambda p: (len(p.parts), _job_num(p), str(p)))


def _config_from_hydra(run_dir: Path) -> dict[str, Any]:
    """Axes and ``cfg.*`` keys of a job from its ``.hydra/`` files (for runs that did not
    write a usable summary); empty when they are missing or unreadable."""
    hydra_dir = run_dir / ".hydra"
    row: dict[str, Any] = {}
    if not hydra_dir.is_dir():
        return row
    try:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(hydra_dir / "hydra.yaml", encoding="utf-8") as f:
            choices = (yaml.load(f, Loader=loader) or {}).get("hydra", {}).get(
                "runtime", {}).get("choices", {})
        for axis in AXES_NO_SEED:
            if choices.get(axis) is not None:
                row[axis] = str(choices[axis])
    except Exception as exc:  # noqa: BLE001 - best effort for a broken run
        log.debug("no choices in %s/hydra.yaml: %s", hydra_dir, exc)
    try:
        from omegaconf import OmegaConf

        from initlab.config import study_config

        saved: list[str] = []
        cfg = OmegaConf.create(_resolvers_as_text(
            OmegaConf.to_container(OmegaConf.load(hydra_dir / "config.yaml"), resolve=False),
            saved))
        try:
            flat = study_config(cfg)
        except Exception:  # noqa: BLE001 - e.g. an interpolation to a missing key
            flat = _flat_unresolved(cfg)
        flat = {k: _saved_text(v, saved) for k, v in flat.items()}
        if "seed" in flat:
            row["seed"] = flat["seed"]
        for key, value in flat.items():
            row[f"cfg.{key}"] = value
        if "init" not in row and flat.get("init.scheme") is not None:
            row["init"] = str(flat["init.scheme"])
        if "activation" not in row and flat.get("activation.name") is not None:
            row["activation"] = str(flat["activation.name"])
    except Exception as exc:  # noqa: BLE001
        log.debug("no config in %s/config.yaml: %s", hydra_dir, exc)
    return row


_RESOLVER_CALL = re.compile(r"\$\{\s*[\w.-]+\s*:")
_SAVED = "\x00saved{}\x00"  # stands for a saved text while the rest is resolved


def _resolvers_as_text(node: Any, saved: list[str]) -> Any:
    """A saved config with every value that calls a resolver (``${oc.env:X}``,
    ``${now:...}``, ``${hydra:...}``) replaced by a placeholder for its saved text (in
    ``saved``): resolving it here would show the reader's environment, not the run's.
    Plain references (``${model.width}``) stay: the saved config decides them."""
    if isinstance(node, dict):
        return {k: _resolvers_as_text(v, saved) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolvers_as_text(v, saved) for v in node]
    if isinstance(node, str) and _RESOLVER_CALL.search(node):
        saved.append(node)
        return _SAVED.format(len(saved) - 1)
    return node


def _saved_text(value: Any, saved: list[str]) -> Any:
    """``value`` with the placeholders of ``_resolvers_as_text`` put back."""
    if isinstance(value, str) and "\x00" in value:
        for i, text in enumerate(saved):
            value = value.replace(_SAVED.format(i), text)
    return value


def unresolved(value: Any) -> bool:
    """A config cell that holds a saved interpolation's text (its value is unknown)."""
    return isinstance(value, str) and "${" in value


def _flat_unresolved(cfg: Any) -> dict[str, Any]:
    """Flat study config resolving each interpolation on its own; keys whose
    interpolation cannot be resolved outside the job (``${hydra:...}``) are left out."""
    from omegaconf import OmegaConf

    from initlab.config import NOT_STUDY_KEYS, flatten

    out: dict[str, Any] = {}
    for key, value in flatten(OmegaConf.to_container(cfg, resolve=False)).items():
        if key.startswith(NOT_STUDY_KEYS):
            continue
        if isinstance(value, str) and "${" in value:
            try:
                value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
            except Exception:  # noqa: BLE001
                continue
        out[key] = value
    return out


def load_run(run_dir: Path, sweep_dir: Path
             ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """One results row, the run's per-layer init diagnostics and its activation
    histograms at init (both may be empty).

    A missing, truncated or unfinished summary gives an ``incomplete`` row whose axes
    and config come from ``.hydra/`` when possible.
    """
    rel = run_dir.relative_to(sweep_dir).as_posix()
    try:
        with open(run_dir / SUMMARY_FILE, encoding="utf-8") as f:
            s = json.load(f)
        if not isinstance(s, dict):
            raise ValueError(f"expected a JSON object, got {type(s).__name__}")
    except FileNotFoundError:
        log.warning("run folder %s has no %s: listed as incomplete", run_dir, SUMMARY_FILE)
        row = {"run": rel, "status": "incomplete", "error_type": "MissingSummary",
               "error": f"no {SUMMARY_FILE} (the job did not finish)"}
        return {**row, **_config_from_hydra(run_dir)}, [], []
    except (OSError, ValueError) as exc:
        log.warning("run folder %s has an unreadable %s (%s: %s): listed as incomplete",
                    run_dir, SUMMARY_FILE, type(exc).__name__, exc)
        row = {"run": rel, "status": "incomplete", "error_type": "BrokenSummary",
               "error": f"{SUMMARY_FILE} unreadable: {type(exc).__name__}: {exc}"}
        return {**row, **_config_from_hydra(run_dir)}, [], []
    row: dict[str, Any] = {"run": rel}
    for key, value in s.items():
        if key in SKIPPED_KEYS or isinstance(value, (dict, list)):
            continue
        row[key] = value
    for key, value in (s.get("config") or {}).items():
        if not isinstance(value, (dict, list)):
            row[f"cfg.{key}"] = value
    status = row.get("status")
    if status not in FINISHED:
        log.warning("run folder %s: summary status %r (killed mid-way?): listed as incomplete",
                    run_dir, status)
        row["status"] = "incomplete"
        row.setdefault("error_type", "Unfinished")
        row.setdefault("error", f"summary status {status!r}: the run did not finish")
    problem = _history_problem(run_dir, s)
    if problem:
        log.warning("run folder %s: %s", run_dir, problem)
        row["warning"] = problem
    diag = s.get("init_diagnostics")
    records = [r for r in diag if isinstance(r, dict)] if isinstance(diag, list) else []
    hists = s.get("init_act_histograms")
    return row, records, hists if isinstance(hists, list) else []


def _history_problem(run_dir: Path, summary: dict[str, Any]) -> str | None:
    """Why the history file a finished summary names cannot be read (None when it can)."""
    name = summary.get("history")
    if not isinstance(name, str) or not name:
        return None
    path = run_dir / name
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline()
    except FileNotFoundError:
        return f"{name} is missing (summary.json names it): no learning curves for this run"
    except (OSError, UnicodeDecodeError) as exc:
        return f"{name} is unreadable ({type(exc).__name__}: {exc}): no learning curves"
    if "epoch" not in header.split(","):
        return f"{name} has no header row (empty or damaged): no learning curves"
    return None


def is_diag_column(col: str) -> bool:
    return col.startswith(DIAG_PREFIXES) or col in DIAG_KEYS


def _order_columns(frame: pd.DataFrame) -> pd.DataFrame:
    cols = list(frame.columns)
    varying = varying_config_keys(frame)
    lead = [c for c in LEAD_COLUMNS if c in cols]
    metrics = [c for c in METRICS if c in cols]
    diag = [c for c in cols if is_diag_column(c)]
    facts = [c for c in RUN_FACTS + ERROR_COLUMNS if c in cols]
    first = lead + varying + metrics + diag + facts
    taken = set(first)
    cfg = [c for c in cols if c.startswith("cfg.") and c not in taken]
    rest = [c for c in cols if c not in taken and not c.startswith("cfg.")]
    return frame[first + rest + cfg]


def _fix_ints(frame: pd.DataFrame, int_keys: set[str]) -> pd.DataFrame:
    """Integer columns that became float because a row lacks them -> nullable Int64."""
    for col in frame.columns:
        if col in int_keys and frame[col].dtype.kind == "f":
            vals = frame[col].to_numpy()
            ok = ~np.isnan(vals)
            if np.all(vals[ok] == np.round(vals[ok])):
                frame[col] = frame[col].astype("Int64")
    return frame


@dataclass
class Scan:
    """Everything read from a sweep folder in one pass."""

    results: pd.DataFrame
    diagnostics: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the first run (in folder order) with activation histograms at init: its "run",
    # "init" and "activation", and its per-layer histograms under "layers"; {} if none
    init_histograms: dict[str, Any] = field(default_factory=dict)
    # the same for the first run of each (init, activation, model, layers): the figure
    # compares the inits of one architecture and activation
    init_histogram_runs: list[dict[str, Any]] = field(default_factory=list)


def scan(sweep_dir: str | Path, diagnostics: bool = True) -> Scan:
    """Read every run folder once: the results table and (``diagnostics=True``) the
    per-layer init diagnostics of every run, with the run's axes (a probe's own per-layer
    ``activation`` column is kept as ``layer_activation``)."""
    sweep = Path(sweep_dir)
    rows, diag_frames = [], []
    init_histograms: dict[str, Any] = {}
    hist_runs: dict[tuple[str, ...], dict[str, Any]] = {}
    int_keys: set[str] = set()
    float_keys: set[str] = set()
    for d in run_dirs(sweep):
        row, records, hists = load_run(d, sweep)
        if hists:
            entry = {**{k: row.get(k) for k in ("run", "init", "activation", "model")},
                     "layers": hists}
            init_histograms = init_histograms or entry
            layer_names = ",".join(str(h.get("layer")) for h in hists if isinstance(h, dict))
            hist_runs.setdefault((str(row.get("init")), str(row.get("activation")),
                                  str(row.get("model")), layer_names), entry)
        for key, value in row.items():
            if type(value) is int:
                int_keys.add(key)
            elif type(value) is float:
                float_keys.add(key)
        rows.append(row)
        if records and diagnostics:
            diag_frames.append((len(rows) - 1, records))
    frame = pd.DataFrame(rows)
    for col in LEAD_COLUMNS + METRICS + ["diverged_step", "wall_time_s", "n_params",
                                         *ERROR_COLUMNS]:
        if col not in frame:
            frame[col] = pd.Series([None] * len(frame), dtype=object if col in (
                "run", "status", "task", *AXES_NO_SEED, *ERROR_COLUMNS) else float)
    frame = _fix_ints(frame, (int_keys - float_keys) | (INT_COLUMNS & int_keys))
    frame = mark_duplicates(_order_columns(frame))
    diag = pd.DataFrame()
    if diag_frames:
        keep = ["run", "status", *AXES]
        flat = []
        for i, records in diag_frames:
            run_info = {col: rows[i].get(col) for col in keep}
            for rec in records:
                out = {f"layer_{k}" if k in run_info else k: v for k, v in rec.items()}
                out.update(run_info)  # facets/hues are the run's axes, not the layer's
                flat.append(out)
        diag = pd.DataFrame(flat)
    return Scan(frame, diag, init_histograms, list(hist_runs.values()))


STATUS_ORDER = {s: i for i, s in enumerate(STATUSES)}  # which copy of a run counts


def mark_duplicates(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with a ``duplicate_of`` column (the folder of the copy that counts)
    when two or more run folders hold the same configuration, seed included (the task,
    the axes and every ``cfg.*`` key equal; rows without a known config are never
    duplicates). The copy
    that counts is the first finished one in folder order (completed before diverged
    before failed before incomplete)."""
    cfg = [c for c in results.columns if c.startswith("cfg.")]
    if results.empty or not cfg:
        return results
    known = results[cfg].notna().any(axis=1)
    same = [c for c in ("task", *AXES) if c in results] + cfg
    key = pd.Series(["\x1f".join(map(str, row)) for row in results[same].to_numpy()],
                    index=results.index)
    order = results["status"].map(STATUS_ORDER).fillna(len(STATUSES))
    duplicate_of = pd.Series([None] * len(results), index=results.index, dtype=object)
    for _, rows in results[known].groupby(key[known], sort=False):
        if len(rows) > 1:
            first = order[rows.index].sort_values(kind="stable").index[0]
            duplicate_of[rows.index.drop(first)] = results.at[first, "run"]
    if duplicate_of.notna().any():
        results = results.copy()
        results.insert(results.columns.get_loc("status") + 1, "duplicate_of", duplicate_of)
        log.warning("%d run folder(s) repeat another run's configuration and seed: listed "
                    "in results.csv with duplicate_of, counted once",
                    int(duplicate_of.notna().sum()))
    return results


def counted(results: pd.DataFrame) -> pd.DataFrame:
    """The rows that count in statistics: all but the duplicates (``mark_duplicates``)."""
    if "duplicate_of" not in results:
        return results
    return results[results["duplicate_of"].isna()]


def _counted_diagnostics(diagnostics: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """The per-layer init diagnostics of the runs that count (no duplicates)."""
    if diagnostics.empty or "run" not in diagnostics:
        return diagnostics
    return diagnostics[diagnostics["run"].isin(results["run"])]


def collect(sweep_dir: str | Path) -> pd.DataFrame:
    """results.csv as a DataFrame: one row per run folder, every status included."""
    return scan(sweep_dir, diagnostics=False).results


# --------------------------------------------------------------------------- sweep structure


def attributed(results: pd.DataFrame) -> pd.Series:
    """Rows whose configuration is known (at least one axis or config key)."""
    if results.empty:
        return pd.Series([], dtype=bool)
    cols = [c for c in results.columns if c in AXES_NO_SEED or c.startswith("cfg.")]
    return results[cols].notna().any(axis=1) if cols else pd.Series(False, index=results.index)


def _distinct(series: pd.Series) -> list[Any]:
    """Distinct non-null values in order of appearance (compared as text)."""
    seen: dict[str, Any] = {}
    for v in series.dropna().tolist():
        seen.setdefault(str(v), v)
    return list(seen.values())


def varying_config_keys(results: pd.DataFrame) -> list[str]:
    """``cfg.*`` columns with more than one distinct value over the runs with a known
    config (missing values do not count: a key only some schemes have is not swept)."""
    if results.empty:
        return []
    known = results[attributed(results)]
    keys = []
    for col in results.columns:
        if col.startswith("cfg.") and col not in MIRROR_KEYS:
            values = known[col].dropna()
            values = values[~values.map(unresolved)]  # a saved ${...} text: value unknown
            if values.astype(str).nunique() > 1:
                keys.append(col)
    return keys


ARM_KEY = "cfg.study.arm"  # the arm of a named study (conf/experiment/arm/)


@dataclass(frozen=True)
class SweepKeys:
    """How the columns of a sweep relate.

    ``group``: every key defining a configuration except the seed (summary.csv rows);
    ``competitors``: ``init`` and the swept ``cfg.init.*`` keys (what a ranking compares);
    in an arm study (``cfg.study.arm`` varies: named experiments whose arms differ in
    more than the init, e.g. Fixup vs BatchNorm) also the arm and every key the arm
    decides (one value per arm), so that the arms are ranked against each other;
    ``context``: ``group`` minus ``competitors`` (a ranking is done within each value);
    ``swept``: keys (axes or config) that take more than one value independently of the
    init choice - the axes a user swept; config keys that only differ because each
    scheme has its own defaults (``init.distribution``) are in ``group`` but not here.
    """

    group: tuple[str, ...]
    competitors: tuple[str, ...]
    context: tuple[str, ...]
    swept: tuple[str, ...]

    @property
    def hue(self) -> tuple[str, ...]:
        """Keys that tell the compared init settings apart (``init`` + swept init keys,
        and the arm of an arm study)."""
        arm = (ARM_KEY,) if ARM_KEY in self.competitors else ()
        return ("init", *[k for k in self.swept if k.startswith("cfg.init.")], *arm)

    @property
    def facets(self) -> tuple[str, ...]:
        """Swept keys other than the init settings and the seed."""
        return tuple(k for k in self.swept if k not in self.hue and k != "seed")


def sweep_keys(results: pd.DataFrame) -> SweepKeys:
    known = results[attributed(results)] if not results.empty else results
    axes = [a for a in AXES_NO_SEED if a in results]
    varying = varying_config_keys(results)
    group = axes + varying
    competitors = ["init"] + [k for k in varying if k.startswith("cfg.init.")]
    if ARM_KEY in varying and not known.empty:
        # the arms compete, with everything an arm decides (norm, optimizer, ...)
        arm = known[ARM_KEY].astype(str)
        for key in group:
            if key not in competitors and key != ARM_KEY and (
                    known[key].astype(str).groupby(arm).nunique() <= 1).all():
                competitors.append(key)
        competitors.append(ARM_KEY)
    context = [k for k in group if k not in competitors]
    swept = []
    for key in group:
        values = known[key].dropna().astype(str)
        if values.nunique() < 2:
            continue
        if key == "init" or key in AXES_NO_SEED or "init" not in known:
            swept.append(key)
            continue
        per_init = values.groupby(known.loc[values.index, "init"].astype(str)).nunique()
        if (per_init > 1).any():
            swept.append(key)
    return SweepKeys(tuple(group), tuple(competitors), tuple(context), tuple(swept))


def display_name(key: str) -> str:
    """``cfg.model.depth`` -> ``model.depth``."""
    return key[4:] if key.startswith("cfg.") else key


def resolve_key(results: pd.DataFrame, name: str) -> str:
    """The results column a user means by ``name`` (``activation``, ``model.depth``,
    ``cfg.model.depth``); ValueError naming the choices otherwise."""
    for cand in (name, f"cfg.{name}"):
        if cand in results.columns and results[cand].notna().any():
            return cand
    keys = sweep_keys(results)
    choices = list(dict.fromkeys(["init", *keys.swept, *AXES_NO_SEED]))
    raise ValueError(f"unknown axis {name!r}: choose from "
                     f"{', '.join(display_name(k) for k in choices)} "
                     "(or any config key such as model.depth)")


def default_heatmap_axes(results: pd.DataFrame) -> tuple[str, str]:
    """``(init, activation)``; when activation is not swept but another key is, that key."""
    keys = sweep_keys(results)
    if "activation" in keys.swept or not keys.facets:
        return "init", "activation"
    return "init", keys.facets[0]


def task_of(frame: pd.DataFrame) -> str:
    """``classification`` or ``regression`` for a set of runs (from ``task``, else from
    which metrics exist)."""
    tasks = frame["task"].dropna().astype(str) if "task" in frame else pd.Series([], dtype=str)
    if len(tasks):
        return tasks.mode().iloc[0]
    if "best_val_acc" in frame and pd.to_numeric(frame["best_val_acc"], errors="coerce").notna(
    ).any():
        return "classification"
    if "best_val_loss" in frame and pd.to_numeric(frame["best_val_loss"], errors="coerce"
                                                  ).notna().any():
        return "regression"
    return "classification"


def rank_metric(task: str) -> tuple[str, bool]:
    """(metric, higher_is_better) a configuration is ranked by."""
    return ("best_val_acc", True) if task == "classification" else ("best_val_loss", False)


# --------------------------------------------------------------------------- summary


def _numeric(frame: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.to_numeric(frame[c], errors="coerce") for c in cols},
                        index=frame.index)


def summarize(results: pd.DataFrame, keys: SweepKeys | None = None) -> pd.DataFrame:
    """summary.csv: one row per configuration (every key but the seed) with run counts,
    ``<metric>_mean``, ``_std`` (ddof=1) and ``_ci95`` (Student t half-width, NaN for
    fewer than two values), and a ``rank`` (see the module docstring)."""
    if results.empty:
        return pd.DataFrame(columns=["n", *(f"n_{s}" for s in STATUSES), "rank"])
    keys = keys or sweep_keys(results)
    frame = results[attributed(results)]
    if frame.empty:
        return pd.DataFrame(columns=["n", *(f"n_{s}" for s in STATUSES), "rank"])
    group = list(keys.group)
    completed = frame["status"].eq("completed")
    metrics = [m for m in SUMMARY_METRICS if m in frame]
    diag = [c for c in frame.columns if is_diag_column(c)]
    values = _numeric(frame, metrics + diag)
    values.loc[~completed, metrics] = np.nan
    # an infinite training metric would swamp a mean; an infinite diagnostic (the
    # mean-field depth scale at criticality) is a real value and is kept
    values[metrics] = values[metrics].replace([np.inf, -np.inf], np.nan)
    counts = pd.DataFrame({f"n_{s}": frame["status"].eq(s).astype(int) for s in STATUSES})
    counts.insert(0, "n", 1)
    if "epochs_to_target" in values:
        counts["n_reached_target"] = values["epochs_to_target"].notna().astype(int)
    by = [frame[k] for k in group]
    grouped_counts = counts.groupby(by, sort=False, dropna=False).sum()
    stats = values.groupby(by, sort=False, dropna=False).agg(["mean", "std", "count"])
    out = grouped_counts
    tasks = frame.groupby(by, sort=False, dropna=False)["task"].agg(
        lambda s: s.dropna().iloc[0] if s.notna().any() else None)
    out.insert(0, "task", tasks)
    cols: dict[str, Any] = {}
    for m in metrics + diag:
        mean, std, count = (stats[(m, a)] for a in ("mean", "std", "count"))
        cols[f"{m}_mean"] = mean
        cols[f"{m}_std"] = std
        cols[f"{m}_ci95"] = pd.Series(ci95_halfwidths(std.to_numpy(), count.to_numpy()),
                                      index=std.index)
    out = pd.concat([out, pd.DataFrame(cols, index=out.index)], axis=1).reset_index()
    out.columns = [*group, *out.columns[len(group):]]
    if out["task"].isna().any():
        fallback = task_of(frame)
        out["task"] = out["task"].fillna(fallback)
    return best_tuned(_rank(out, keys), keys)


# --------------------------------------------------------------------------- best lr

TUNED_PREFIX = "cfg.optimizer."  # swept keys read as hyper-parameters to tune per init


def tuned_keys(keys: SweepKeys) -> list[str]:
    """Swept optimizer keys (``cfg.optimizer.lr``, ...): each init is read at its own best
    setting of them, since one fixed lr favours whichever init it happens to suit."""
    return [k for k in keys.context if k.startswith(TUNED_PREFIX) and k in keys.swept]


def best_column(key: str) -> str:
    """``cfg.optimizer.lr`` -> ``best_optimizer.lr``."""
    return f"best_{display_name(key)}"


def _score(summary: pd.DataFrame) -> pd.Series:
    """The ranking metric's mean, signed so that higher is better."""
    score = pd.Series(np.nan, index=summary.index)
    for task in summary["task"].dropna().unique():
        metric, higher = rank_metric(str(task))
        rows = summary["task"].eq(task)
        if f"{metric}_mean" in summary:
            vals = pd.to_numeric(summary.loc[rows, f"{metric}_mean"], errors="coerce")
            score[rows] = vals if higher else -vals
    return score


def _edge(value: Any, values: pd.Series) -> str:
    """``largest`` / ``smallest`` when ``value`` is the end of the numeric ``values``
    (two or more distinct), else empty."""
    nums = pd.to_numeric(values, errors="coerce").dropna().unique()
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if len(nums) < 2 or not np.isfinite(v):
        return ""
    if v >= nums.max():
        return "largest"
    if v <= nums.min():
        return "smallest"
    return ""


def best_tuned(summary: pd.DataFrame, keys: SweepKeys) -> pd.DataFrame:
    """Best-lr reading of summary.csv when optimizer keys are swept (``tuned_keys``):
    per init setting and value of every other swept key, the configuration with the best
    mean ranking metric over its completed seeds gets ``at_best`` = True; every row of
    the group gets ``best_<key>`` (the best value) and ``best_<key>_edge`` (``largest`` /
    ``smallest`` when the best value is the end of the swept range: the range may be too
    narrow), and the best rows a ``best_rank``: the inits ranked at their own best
    setting within each value of the other swept keys.  Unchanged without tuned keys."""
    tuned = [k for k in tuned_keys(keys) if k in summary]
    if not tuned or summary.empty:
        return summary
    outer = [k for k in keys.context if k not in tuned and k in summary]
    hue = [k for k in keys.competitors if k in summary]
    score = _score(summary)
    at_best = pd.Series(False, index=summary.index)
    cols: dict[str, pd.Series] = {}
    for k in tuned:
        cols[best_column(k)] = pd.Series([None] * len(summary), index=summary.index,
                                         dtype=object)
        cols[f"{best_column(k)}_edge"] = pd.Series("", index=summary.index, dtype=object)
    by = outer + hue
    groups = summary.groupby(by, sort=False, dropna=False) if by else [((), summary)]
    for _, g in groups:
        sc = score[g.index].dropna()
        if sc.empty:
            continue
        best = sc.idxmax()
        at_best[best] = True
        for k in tuned:
            cols[best_column(k)].loc[g.index] = summary.at[best, k]
            cols[f"{best_column(k)}_edge"].loc[g.index] = _edge(summary.at[best, k], g[k])
    best_rank = pd.Series(np.nan, index=summary.index)
    chosen = summary.index[at_best]
    if len(chosen):
        ctx = (summary.loc[chosen].groupby(outer, sort=False, dropna=False).ngroup()
               if outer else pd.Series(0, index=chosen))
        best_rank[chosen] = score[chosen].groupby(ctx).rank(method="min", ascending=False)
    out = summary.copy()
    pos = out.columns.get_loc("rank_by") + 1
    new = {"at_best": at_best, "best_rank": best_rank.astype("Int64"), **cols}
    for i, (name, col) in enumerate(new.items()):
        out.insert(pos + i, name, col)
    return out


def _rank(summary: pd.DataFrame, keys: SweepKeys) -> pd.DataFrame:
    score = pd.Series(np.nan, index=summary.index)
    rank_by = pd.Series("", index=summary.index, dtype=object)
    for task in summary["task"].dropna().unique():
        metric, higher = rank_metric(str(task))
        rows = summary["task"].eq(task)
        col = f"{metric}_mean"
        if col in summary:
            score[rows] = summary.loc[rows, col] if higher else -summary.loc[rows, col]
        rank_by[rows] = metric
    context = [k for k in keys.context if k in summary]
    if context:
        ctx_id = summary.groupby(context, sort=False, dropna=False).ngroup()
    else:
        ctx_id = pd.Series(0, index=summary.index)
    rank = score.groupby(ctx_id).rank(method="min", ascending=False)
    summary.insert(len(keys.group) + 1, "rank", rank.astype("Int64"))
    summary.insert(len(keys.group) + 2, "rank_by", rank_by)
    order = pd.DataFrame({"ctx": ctx_id, "rank": rank.fillna(np.inf), "pos": summary.index})
    order = order.sort_values(["ctx", "rank", "pos"], kind="stable")
    return summary.loc[order.index].reset_index(drop=True)


def runs_at_best(results: pd.DataFrame, summary: pd.DataFrame, keys: SweepKeys
                 ) -> pd.DataFrame:
    """The runs of each init setting's best tuned configuration (all runs when no
    optimizer key is swept)."""
    runs = results[attributed(results)]
    if not tuned_keys(keys) or "at_best" not in summary:
        return runs
    group = [k for k in keys.group if k in summary and k in runs]
    best = summary[summary["at_best"].astype(bool)]
    ids = {_row_id(r, group) for _, r in best.iterrows()}
    mine = runs.apply(lambda r: _row_id(r, group) in ids, axis=1)
    return runs[mine]


def _row_id(row: pd.Series, keys: Sequence[str]) -> str:
    parts = []
    for k in keys:
        v = row.get(k)
        parts.append("" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v))
    return "\x1f".join(parts)


# --------------------------------------------------------------------------- entry points


def aggregate(
    sweep_dir: str | Path,
    plots: bool = True,
    axes: tuple[str, str] | Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Write results.csv, summary.csv, plots/ (``plots=True``) and report.md into
    ``sweep_dir``; every file is replaced atomically.  ``axes=(row, col)``: the heatmap's
    axes (default init x activation, see :func:`default_heatmap_axes`).  ``formats``:
    figure formats (``png`` always; ``pdf``, ``svg`` also, for papers).  Raises
    SweepWriteError (one line, naming the folder and the file) when an output cannot be
    written.

    Returns the written paths: ``results``, ``summary``, ``report`` and ``plots`` (the
    folder) when plots were made.  Raises NotASweepError if ``sweep_dir`` is not a folder,
    ValueError for unknown heatmap axes or figure formats (before anything is
    written).
    """
    sweep = Path(sweep_dir)
    if not sweep.is_dir():
        raise NotASweepError(f"{sweep} is not a folder")
    found = scan(sweep)
    everything = found.results  # results.csv: every run folder
    results = counted(everything)  # the statistics, plots and report: each run once
    keys = sweep_keys(results)
    heat_axes: tuple[str, str] | None = None
    if plots:
        from initlab.results.figformats import check_formats

        check_formats(formats)  # a bad format is refused before anything is written
    if plots and not results.empty:
        if axes is not None:
            if len(axes) != 2:
                raise ValueError(f"heatmap axes: expected (row, col), got {axes!r}")
            heat_axes = (resolve_key(results, axes[0]), resolve_key(results, axes[1]))
        else:
            heat_axes = default_heatmap_axes(results)
    summary = summarize(results, keys)
    written: dict[str, Path] = {
        "results": _writing(sweep, RESULTS_FILE,
                            lambda: write_csv(sweep / RESULTS_FILE, everything)),
        "summary": _writing(sweep, SEED_SUMMARY_FILE,
                            lambda: write_csv(sweep / SEED_SUMMARY_FILE, summary)),
    }
    figures: dict[str, Path] = {}
    if plots and not results.empty:
        from initlab.results.plots import plot_all

        written["plots"] = sweep / PLOTS_DIR
        _writing(sweep, f"{PLOTS_DIR}/", lambda: written["plots"].mkdir(exist_ok=True))
        try:
            figures = plot_all(sweep, results, keys=keys, axes=heat_axes, summary=summary,
                               diagnostics=_counted_diagnostics(found.diagnostics, results),
                               init_histograms=found.init_histogram_runs,
                               formats=formats)
            from initlab.results.coord_check import plot_coord_check  # width sweeps

            figures.update(plot_coord_check(sweep))
        except Exception as exc:  # noqa: BLE001 - plots must not lose the tables
            log.error("plotting failed (%s: %s); the tables and report are written",
                      type(exc).__name__, exc, exc_info=True)
    from initlab.results.report import build_report

    text = build_report(sweep, results, summary, keys=keys, plots=figures,
                        duplicates=everything[~everything.index.isin(results.index)])
    written["report"] = _writing(sweep, REPORT_FILE,
                                 lambda: atomic_write_text(sweep / REPORT_FILE, text))
    return written


def status_line(results: pd.DataFrame) -> str:
    counts = results["status"].value_counts() if len(results) else {}
    parts = [f"{int(counts.get(s, 0))} {s}" for s in STATUSES if counts.get(s, 0)]
    return f"{len(results)} runs: " + (", ".join(parts) if parts else "none finished")

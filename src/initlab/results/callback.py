"""Hydra callback: one progress line per finished job, aggregation at the end of a sweep."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("initlab.sweep")


def count_jobs(config: DictConfig) -> int | None:
    """Number of runs the sweep expands to: the command line's sweeps and those an
    experiment declares in ``hydra.sweeper.params`` (the command line wins per key)."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create()
        params = config.hydra.sweeper.get("params") or {}
        by_key = {ov.key_or_group: ov for ov in
                  parser.parse_overrides([f"{k}={v}" for k, v in params.items()])}
        by_key.update({ov.key_or_group: ov for ov in
                       parser.parse_overrides(list(config.hydra.overrides.task))})
        n = 1
        for ov in by_key.values():
            if ov.is_sweep_override():
                n *= len(list(ov.sweep_iterator()))
        return n
    except Exception:  # noqa: BLE001 - the count only decorates progress lines
        return None


def _one_line(kind: Any, message: str, limit: int = 300) -> str:
    text = " ".join(str(message).split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{kind}: {text}" if kind else text


def run_status(summary: dict[str, Any]) -> str:
    """A run's status as a sweep's line shows it: skipped (running elsewhere, or already
    finished) and interrupted runs say what that means."""
    status = str(summary.get("status", "?"))
    if summary.get("skip_reason"):
        return f"skipped: {summary['skip_reason']}"
    if summary.get("skipped"):
        return f"{status} (already finished, skipped)"
    if status == "interrupted":
        return "interrupted (SIGTERM; a rerun of the command continues it)"
    return status


def _fmt(label: str, value: Any) -> str:
    return f", {label} {value:.4f}" if isinstance(value, (int, float)) else ""


class AggregateSweep(Callback):
    """``hydra.callbacks.aggregate.plots=false`` skips the figures;
    ``hydra.callbacks.aggregate.heatmap_axes=[init,model.depth]`` picks the heatmap's axes;
    ``hydra.callbacks.aggregate.formats=[png,pdf]`` also writes each figure as PDF (or
    ``svg``), for papers."""

    def __init__(self, plots: bool = True, heatmap_axes: list[str] | None = None,
                 formats: list[str] | None = None) -> None:
        from initlab.results.figformats import check_formats

        self.plots = plots
        self.heatmap_axes = list(heatmap_axes) if heatmap_axes else None
        try:
            self.formats = list(check_formats(formats))
        except ValueError as exc:  # at the start of the sweep, not after its last job
            raise ValueError(f"hydra.callbacks.aggregate.formats: {exc}") from None
        self.total: int | None = None
        self.done = 0
        self.refused = 0  # jobs that stopped before writing a summary (e.g. foreign folder)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.total = count_jobs(config)
        self.done = 0
        self.refused = 0

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode is None or str(config.hydra.mode) != "RunMode.MULTIRUN":
            return
        self.done += 1
        value = job_return.return_value if job_return.status == JobStatus.COMPLETED else None
        if isinstance(value, dict) and value.get("vectorized"):
            # one job trained several runs; it printed a line per run itself
            shared = [o for o in job_return.overrides or [] if "++vectorize." not in o]
            print(f"[vectorized job {config.hydra.job.num + 1}] {' '.join(shared) or '(defaults)'}"
                  f": {value.get('status')}", flush=True)
            return
        if isinstance(value, dict):
            s = value
            status = run_status(s)
            if status == "failed" and s.get("error"):
                status = f"{status}: {_one_line(s.get('error_type'), s['error'])}"
            self.refused += bool(s.get("refused"))
            if s.get("task") == "regression":
                best_s = _fmt("best val loss", s.get("best_val_loss"))
            else:
                best_s = _fmt("best val acc", s.get("best_val_acc"))
        else:  # the job raised before it could record anything
            try:
                _ = job_return.return_value
                reason = repr(value)
            except Exception as exc:  # noqa: BLE001 - the job's own error, to show
                reason = _one_line(type(exc).__name__, str(exc))
            status, best_s = f"failed: {reason}", ""
            self.refused += 1
        total = self.total if self.total else "?"
        overrides = " ".join(job_return.overrides or []) or "(defaults)"
        print(f"[job {config.hydra.job.num + 1}/{total}] {overrides}: {status}{best_s}",
              flush=True)
        from initlab.runguard import raise_if_interrupted

        raise_if_interrupted()  # SIGTERM: no further job starts; the sweep aggregates

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        import pandas as pd

        from initlab.results.aggregate import SweepWriteError, aggregate, status_line

        sweep = Path(config.hydra.sweep.dir)
        try:
            try:
                written = aggregate(sweep, plots=self.plots, axes=self.heatmap_axes,
                                    formats=self.formats)
            except ValueError as exc:  # an unknown heatmap axis: keep the default ones
                log.warning("%s; using the default heatmap axes", exc)
                written = aggregate(sweep, plots=self.plots, formats=self.formats)
        except SweepWriteError as exc:  # the runs are done; say so in one line
            raise SystemExit(f"{exc.strerror}; the runs are in {sweep}: aggregate them "
                             "elsewhere with python scripts/aggregate.py") from None
        results = pd.read_csv(written["results"])
        print(status_line(results))
        print(f"results: {written['results']}")
        print(f"summary: {written['summary']}")
        if "plots" in written:
            print(f"plots:   {written['plots']}/")
        print(f"report:  {written.get('report', sweep / 'report.md')}")
        print(f"browse:  tensorboard --logdir {sweep}")  # where the runs are, whatever the dir
        from initlab.runguard import received

        signum = received()
        if signum is not None:
            print(f"sweep interrupted by signal {signum} (SIGTERM): the aggregates cover "
                  "what finished; run the same command again to finish it", flush=True)
            raise SystemExit(128 + signum)
        failed = int((results["status"] == "failed").sum()) if len(results) else 0
        failed += self.refused
        if failed:
            # after aggregation, so the finished results are written whatever happens
            raise SystemExit(f"{failed} run(s) failed: see the [job] lines above and the "
                             "error column of results.csv")

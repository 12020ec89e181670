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
    """Number of jobs the basic sweeper will launch for this command line."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
        n = 1
        for ov in parsed:
            if ov.is_sweep_override():
                n *= len(list(ov.sweep_iterator()))
        return n
    except Exception:  # noqa: BLE001 - the count only decorates progress lines
        return None


class AggregateSweep(Callback):
    def __init__(self, plots: bool = True) -> None:
        self.plots = plots
        self.total: int | None = None
        self.done = 0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.total = count_jobs(config)
        self.done = 0

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode is None or str(config.hydra.mode) != "RunMode.MULTIRUN":
            return
        self.done += 1
        if job_return.status == JobStatus.COMPLETED and isinstance(job_return.return_value, dict):
            s = job_return.return_value
            status, best = s.get("status", "?"), s.get("best_val_acc")
            if s.get("skipped"):
                status = f"{status} (already finished, skipped)"
        else:
            status, best = "failed", None
        best_s = f"{best:.4f}" if isinstance(best, float) else "-"
        total = self.total if self.total else "?"
        overrides = " ".join(job_return.overrides or []) or "(defaults)"
        print(f"[job {config.hydra.job.num + 1}/{total}] {overrides}: {status}, "
              f"best val acc {best_s}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from initlab.results.aggregate import aggregate, collect, status_line

        sweep = Path(config.hydra.sweep.dir)
        written = aggregate(sweep, plots=self.plots)
        results = collect(sweep)
        print(status_line(results))
        print(f"results: {written['results']}")
        print(f"summary: {written['summary']}")
        if "plots" in written:
            print(f"plots:   {written['plots']}/")
        print(f"report:  {sweep / 'report.md'}")
        print(f"browse:  tensorboard --logdir {config.paths.output_root}")
        failed = int((results["status"] == "failed").sum()) if len(results) else 0
        if failed:
            # after aggregation, so the finished results are written whatever happens
            raise SystemExit(f"{failed} run(s) failed: see the error column of results.csv")

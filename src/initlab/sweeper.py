"""initlab's sweepers. ``hydra/sweeper=checked``: Hydra's basic sweep, with every job
checked before the first one trains, and a sweep that stops cleanly on SIGTERM.
``hydra/sweeper=auto`` (the default, ``AutoSweeper``): the same checks, then the sweep is
launched as ``hydra/sweeper=vectorized`` launches it when every run can be vectorized,
else as the checked sweep.

Jobs are expanded exactly as the basic sweeper does (``hydra.sweeper.params`` first,
then the command line; cartesian product, later keys varying fastest; the same job
numbers, so sweeps made before keep their folders). Before any launch, each job's config
is composed with Hydra's config loader and checked (``jobcheck.check_job``: values,
optimizer arguments) together with its run folder (``resume.check_run_folder``: another
config's finished run, a foreign or unreadable checkpoint). If any job is bad the sweep
stops, naming each bad job's overrides and the reason, and nothing trains.

SIGTERM during a job (``runguard.Interrupted``) ends the launching; the sweep returns
normally so that Hydra's end-of-sweep callbacks aggregate what finished, and
``AggregateSweep`` then exits with status 143.

Like the vectorized sweeper, it derives from Hydra's plugin interface rather than from
``BasicSweeper`` (Hydra's plugin scan re-executes its core plugin modules); the class
Hydra instantiates is the thin subclass in ``hydra_plugins.initlab_checked`` (and
``hydra_plugins.initlab_auto``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from initlab.heap import setup_phase
from initlab.vectorized import handoff
from initlab.vectorized.sweeper import LaunchingSweeper

log = logging.getLogger(__name__)


class RefusedJobs(CompactHydraException):
    """Jobs whose config or run folder is bad (Hydra prints the message alone, exit 1)."""


def job_folder(sweep_dir: str | Path, job_cfg: DictConfig, num: int) -> Path:
    """The run folder Hydra's launcher gives job ``num`` (``hydra.sweep.subdir``)."""
    with open_dict(job_cfg):
        job_cfg.hydra.job.num = num
        job_cfg.hydra.job.id = num
    return Path(sweep_dir) / str(OmegaConf.select(job_cfg, "hydra.sweep.subdir"))


def check_job_config(job_cfg: DictConfig, folder: Path | None) -> None:
    """Raise what would stop this job: its values, then its run folder."""
    from initlab.jobcheck import check_job
    from initlab.resume import check_run_folder

    check_job(job_cfg)
    if folder is not None:
        check_run_folder(job_cfg, folder)


class CheckedSweeper(LaunchingSweeper):
    """``max_batch_size``: jobs per launcher call (null: all); ``params``: sweep params
    from the config (an experiment's ``hydra.sweeper.params``), as in the basic sweeper;
    ``vectorize``: see ``AutoSweeper``."""

    def __init__(self, max_batch_size: int | None = None,
                 params: dict[str, str] | None = None, vectorize: bool | None = None) -> None:
        self.max_batch_size = max_batch_size
        # read by the auto sweeper only; accepted here so that a config setting
        # hydra.sweeper.vectorize (an experiment) also runs under hydra/sweeper=checked
        self.vectorize = vectorize
        self.params = dict(params or {})
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def job_lists(self, arguments: Sequence[str]) -> list[list[str]]:
        """Every job's overrides, in the basic sweeper's order."""
        from initlab.vectorized.sweeper import expand

        return expand(self.parsed_overrides(arguments), sweeper="the basic sweeper")

    def check_all(self, jobs: Sequence[Sequence[str]]) -> None:
        """Compose and check every job; raise ``RefusedJobs`` listing all bad ones."""
        assert self.hydra_context is not None and self.config is not None
        from initlab.jobcheck import describe_error

        sweep_dir = Path(self.config.hydra.sweep.dir)
        bad: list[str] = []
        composed: dict[tuple[str, ...], DictConfig] = {}
        # a bad job is named by what sets it apart (the overrides all jobs share are not)
        common = set.intersection(*(set(j) for j in jobs)) if len(jobs) > 1 else set()
        for num, job in enumerate(jobs):
            try:
                job_cfg = self.compose_job(list(job), composed)
                folder = job_folder(sweep_dir, job_cfg, num)
                check_job_config(job_cfg, folder if folder.exists() else None)
                self.inspect_job(num, job, job_cfg)
                handoff.offer(handoff.handoff_key(self.config.hydra.job.config_name,
                                                  self.config.hydra.overrides.hydra, job),
                              job_cfg)
            except Exception as exc:  # noqa: BLE001 - every bad job is reported
                own = " ".join(o for o in job if o not in common)
                bad.append(f"  job {num + 1} ({own or 'defaults'}): "
                           f"{describe_error(exc)}")
        if bad:
            raise RefusedJobs(
                f"{len(bad)} of {len(jobs)} job(s) refused before any training; fix them "
                "and run the command again:\n" + "\n".join(bad))

    def compose_job(self, job: list[str], composed: dict[tuple[str, ...], DictConfig]
                    ) -> DictConfig:
        """The job's config as Hydra's launcher composes it. Jobs that differ only in a
        plain ``seed=<int>`` share one composition (0.2-0.4 s each here; 64 of them
        would take 13-26 s), copied with the seed and its traces in the hydra node
        (task overrides, ``override_dirname``) replaced, as vectorized jobs do."""
        import copy

        from initlab.compat import overrides_dirname
        from initlab.vectorized.grouping import split_seed

        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        rest, seed = split_seed(job)
        if seed is None:
            return loader.load_sweep_config(self.config, job)
        if rest not in composed:
            composed[rest] = loader.load_sweep_config(self.config, job)
            return copy.deepcopy(composed[rest])
        job_cfg = copy.deepcopy(composed[rest])
        dirname = overrides_dirname(job, job_cfg.hydra)
        if dirname is None:  # Hydra's internals moved: compose it
            return loader.load_sweep_config(self.config, job)
        with read_write(job_cfg), open_dict(job_cfg):
            job_cfg.seed = seed
            job_cfg.hydra.overrides.task = list(job)
            job_cfg.hydra.job.override_dirname = dirname
        return job_cfg

    def inspect_job(self, num: int, job: Sequence[str], job_cfg: DictConfig) -> None:
        """Called with each job's composed config once it passed its checks (a hook for
        subclasses: the auto sweeper looks there whether the sweep can be vectorized)."""

    def sweep(self, arguments: list[str]) -> Any:
        jobs = self.job_lists(arguments)
        self.check_all(jobs)
        handoff.clear()  # ordinary jobs compose their own
        return self.launch_all(jobs)


def vectorize_refusal(exc: Exception) -> str:
    """A ``VectorizeError`` as the auto sweeper's reason: ``key=value cannot be vectorized:
    allowed ...`` (the hint about ``hydra/sweeper=vectorized`` does not apply here)."""
    from initlab.vectorized.checks import HINT

    text = str(exc).replace(" (hydra/sweeper=vectorized)", "")
    return text.removesuffix(f"; {HINT}")


class AutoSweeper(CheckedSweeper):
    """``hydra/sweeper=auto`` (the default): the checked sweeper's jobs and up-front
    checks; when every job can be trained by the vectorized engine, the runs that differ
    only in ``member_keys`` are launched as one vectorized job each, exactly as
    ``hydra/sweeper=vectorized`` launches them (same run folders, same results). Otherwise
    one job per run, after one line naming the key that prevents vectorizing.
    ``vectorize=false`` (``hydra.sweeper.vectorize``): always one job per run, for studies
    that need what only the ordinary path records (``experiment=init_claims``)."""

    def __init__(self, max_batch_size: int | None = None,
                 params: dict[str, str] | None = None,
                 member_keys: Sequence[str] | None = None,
                 max_members: int | None = None, vectorize: bool | None = True) -> None:
        from initlab.vectorized.grouping import checked_member_keys

        super().__init__(max_batch_size, params, vectorize)
        self.member_keys = checked_member_keys(member_keys)
        self.max_members = max_members
        self.refusal: str | None = None  # why this sweep is not vectorized

    def inspect_job(self, num: int, job: Sequence[str], job_cfg: DictConfig) -> None:
        from initlab.vectorized.checks import VectorizeError, check_supported

        if self.refusal is not None:
            return  # one reason is enough
        try:
            check_supported(job_cfg, model_choice=job_cfg.hydra.runtime.choices.get("model"))
        except VectorizeError as exc:
            self.refusal = vectorize_refusal(exc)

    def sweep(self, arguments: list[str]) -> Any:
        from initlab.vectorized.grouping import group_jobs

        runs = self.job_lists(arguments)
        self.refusal = None if self.vectorize is not False else "hydra.sweeper.vectorize=false"
        try:
            with setup_phase():  # imports torch and, with its optimizers, torch._dynamo
                self.check_all(runs)  # also sets self.refusal (inspect_job)
            if self.refusal is not None:
                print(f"[auto] {len(runs)} runs, one job per run (not vectorized): "
                      f"{self.refusal}", flush=True)
                return self.launch_all(runs)
            groups = group_jobs(runs, self.member_keys, self.max_members)
            print(f"[vectorized] {len(runs)} runs in {len(groups)} job(s) "
                  f"(members differ in {', '.join(self.member_keys)}): "
                  + ", ".join(f"job {i}: {len(g.members)} runs"
                              for i, g in enumerate(groups)), flush=True)
            return self.launch_all([g.overrides(i) for i, g in enumerate(groups)])
        finally:
            handoff.clear()

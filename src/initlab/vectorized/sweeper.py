"""The vectorized sweeper: the basic sweeper's runs, grouped into one job per group.

Selected with ``hydra/sweeper=vectorized`` (``conf/hydra/sweeper/vectorized.yaml``). Hydra
instantiates sweepers only from classes its plugin scan found in the ``hydra_plugins``
namespace, so the class Hydra sees is the subclass in ``hydra_plugins.initlab_vectorized``;
the logic lives here.

It derives from Hydra's plugin interface, not from ``BasicSweeper``: Hydra's plugin scan
re-executes the modules of its core plugins, which would leave a subclass of
``BasicSweeper`` imported earlier with a stale base class.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException, HydraException
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from initlab.vectorized.grouping import (
    VECTORIZE_KEY_OVERRIDE,
    VectorizedJob,
    checked_member_keys,
    decode_members,
    group_jobs,
    split_seed,
)

log = logging.getLogger(__name__)


class RefusedSweep(CompactHydraException):
    """A sweep the vectorized sweeper cannot run (Hydra prints the message alone)."""


def expand(overrides: Sequence[Override], sweeper: str = "hydra/sweeper=vectorized"
           ) -> list[list[str]]:
    """The runs of a command line, as Hydra's basic sweeper expands it: the cartesian
    product of every swept key's values (``a=1,2``, ``range(...)``, ``choice(...)``), in
    command-line key order, later keys varying fastest."""
    per_key: dict[str, list[str]] = {}
    for ov in overrides:
        key = ov.get_key_element()
        if ov.is_sweep_override():
            if not ov.is_discrete_sweep():
                raise HydraException(
                    f"{sweeper} cannot expand {ov.input_line!r}: only lists, "
                    f"range() and choice() sweeps")
            per_key[key] = [f"{key}={v}" for v in ov.sweep_string_iterator()]
        else:
            per_key[key] = [f"{key}={ov.get_value_element_as_str()}"]
    return [list(run) for run in itertools.product(*per_key.values())]


class LaunchingSweeper(Sweeper):
    """What initlab's sweepers share: Hydra's launcher set up from the config, and the
    command line's overrides (``params`` first) parsed with Hydra's parser."""

    params: dict[str, str]
    hydra_context: HydraContext | None
    config: DictConfig | None
    launcher: Launcher | None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    max_batch_size: int | None

    def before_batch(self, batch: Sequence[Sequence[str]]) -> None:
        """Called with each batch of jobs before it is launched (checks, by default none)."""

    def launch_all(self, jobs: Sequence[Sequence[str]]) -> list[Sequence[JobReturn]]:
        """Save the sweep config, then launch ``jobs`` in batches of ``max_batch_size``;
        stop launching on SIGTERM (the sweep callback aggregates what finished)."""
        from initlab.runguard import Interrupted

        assert self.config is not None and self.launcher is not None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        size = self.max_batch_size if self.max_batch_size and self.max_batch_size > 0 else None
        size = size or max(len(jobs), 1)
        returns: list[Sequence[JobReturn]] = []
        for start in range(0, len(jobs), size):
            batch = list(jobs[start : start + size])
            self.before_batch(batch)
            try:
                results = self.launcher.launch(batch, initial_job_idx=start)
            except Interrupted:
                log.info("sweep interrupted: no further jobs are launched")
                break
            for r in results:
                _ = r.return_value  # re-raises a job's exception, as the basic sweeper does
            returns.append(results)
        return returns

    def parsed_overrides(self, arguments: Sequence[str]) -> list[Override]:
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        lines = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        return parser.parse_overrides(lines)


class VectorizedSweeper(LaunchingSweeper):
    """Expands the sweep like Hydra's basic sweeper (``hydra.sweeper.params`` first, then
    the command line), then launches every group of runs that differ only in
    ``member_keys`` as ONE job (``++vectorize.members=[...]``); train.py hands such a job
    to ``initlab.vectorized.run_vectorized``. ``max_members`` caps the runs per job
    (larger groups are split); ``max_batch_size`` is the number of jobs per launcher call,
    as in the basic sweeper."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        member_keys: Sequence[str] | None = None,
        max_members: int | None = None,
        vectorize: bool | None = None,  # the auto sweeper's switch; this one always does
    ) -> None:
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.member_keys = checked_member_keys(member_keys)
        self.max_members = max_members
        self.jobs: list[VectorizedJob] = []
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def job_lists(self, arguments: Sequence[str]) -> list[list[str]]:
        """The override list of every vectorized job of this command line."""
        runs = expand(self.parsed_overrides(arguments))
        self.jobs = group_jobs(runs, self.member_keys, self.max_members)
        print(f"[vectorized] {len(runs)} runs in {len(self.jobs)} job(s) "
              f"(members differ in {', '.join(self.member_keys)}): "
              + ", ".join(f"job {i}: {len(j.members)} runs" for i, j in enumerate(self.jobs)),
              flush=True)
        return [job.overrides(i) for i, job in enumerate(self.jobs)]

    def sweep(self, arguments: list[str]) -> Any:
        return self.launch_all(self.job_lists(arguments))

    def before_batch(self, batch: Sequence[Sequence[str]]) -> None:
        self.validate_batch_is_legal(batch)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Like the basic sweeper: every run's config must compose (here: every member of
        every job), and - before any job starts - be one a vectorized job can train."""
        from initlab.vectorized.checks import VectorizeError, check_member_lrs, check_supported

        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        for job in batch:
            shared = [o for o in job if not o.startswith((VECTORIZE_KEY_OVERRIDE, "hydra."))]
            job_cfg = loader.load_sweep_config(self.config, list(job))
            seen: set[tuple[str, ...]] = set()
            lrs: set[Any] = set()  # members with different lrs: only where implemented
            for _, member in decode_members(job_cfg.vectorize.members):
                rest, seed = split_seed([*shared, *member])
                if seed is not None and rest in seen:
                    continue  # differs from a checked member only in a plain seed=<int>
                seen.add(rest)
                cfg = loader.load_sweep_config(self.config, [*shared, *member])
                try:
                    check_supported(cfg, model_choice=cfg.hydra.runtime.choices.get("model"))
                    lrs.add(cfg.optimizer.get("lr"))
                    if len(lrs) > 1:
                        check_member_lrs(cfg)
                except VectorizeError as exc:
                    raise RefusedSweep(str(exc)) from exc

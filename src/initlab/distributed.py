"""Lightning DDP inside Hydra jobs.

For ranks > 0 Lightning re-executes ``sys.argv`` with ``hydra.run.dir`` pointing at
the run folder. Inside a multirun ``sys.argv`` holds ``-m`` and the sweep, so every
child would start the whole sweep again. ``initlab.compat.patch_ddp_for_hydra`` replaces
that command with one run of *this job's* overrides in *this job's* folder, so a sweep
gets exactly one output folder per job.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "RANK")


def is_rank_zero() -> bool:
    """True in the process that owns the run folder (no DDP, or global rank 0)."""
    return all(int(os.environ.get(k, "0") or 0) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


class restored_ddp_env:
    """Undo what a DDP fit leaves in the sweep process (rank variables, process group,
    thread count).

    Lightning sets ``LOCAL_RANK``/``WORLD_SIZE``/... in ``os.environ`` of rank zero; left
    there, the next job of a multirun would believe its processes were launched
    externally and wait for ranks that never start. It also sets torch's threads (and
    ``OMP_NUM_THREADS``) to cores // processes, which the next jobs would inherit.
    """

    def __enter__(self) -> restored_ddp_env:
        import torch

        self.saved = {k: os.environ.get(k) for k in (*DDP_ENV, "OMP_NUM_THREADS")}
        self.threads = torch.get_num_threads()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def job_subprocess_cmd(local_rank: int) -> tuple[Sequence[str], str]:
    """The command a DDP child runs: this job only, in this job's run folder."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hc = HydraConfig.get()
    if getattr(__main__, "__spec__", None) is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    if hc.runtime.config_sources:
        for source in hc.runtime.config_sources:
            if source.provider == "command-line":
                command.append(f"--config-dir={source.path.split('://', 1)[-1]}")
    if hc.job.config_name:  # --config-name=...: the children compose the same config
        command.append(f"--config-name={hc.job.config_name}")
    command += list(hc.overrides.task)
    command += [
        f"hydra.run.dir={_quote(hc.runtime.output_dir)}",
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, get_original_cwd()


def check_launcher(trainer_cfg: Any) -> None:
    """Refuse ``trainer.strategy=ddp`` inside a joblib worker (``hydra/launcher=
    local_parallel``): Lightning starts the other ranks by running this job's command
    again, and a worker has none (it relaunched the worker module and killed the sweep).
    Raises ValueError naming both keys."""
    if str(trainer_cfg.get("strategy", "auto")) != "ddp":
        return
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    target = str(HydraConfig.get().launcher.get("_target_", "") or "")
    if "joblib" in target.lower():
        raise ValueError(
            "trainer.strategy='ddp' is not allowed under hydra/launcher=local_parallel "
            "(joblib workers cannot start the DDP processes); allowed: the basic launcher "
            "(DDP's processes use the cores themselves) or a submitit launcher")


def worker_threads(threads: int | None, launcher: Any = None) -> int | None:
    """Torch threads for this job: ``threads`` if set; under the joblib launcher
    cores // n_jobs, so that parallel workers x threads = cores; under a submitit
    launcher (SLURM, local) the job's ``cpus_per_task``, the cores it was given (torch
    would take every core of the node, and jobs share nodes); else None (torch's
    default). A ``threads`` other than null or an integer >= 1 gives None here: the run
    then fails on it in ``config.validate``, which names the key, with its summary written
    (torch's own error would end the job without one)."""
    if threads is not None:
        valid = isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1
        return threads if valid else None
    target = str(getattr(launcher, "_target_", "") or "") if launcher is not None else ""
    if "submitit" in target.lower():
        cpus = getattr(launcher, "cpus_per_task", None)
        return int(cpus) if isinstance(cpus, int) and cpus >= 1 else None
    if "joblib" not in target.lower():
        return None
    cores = os.cpu_count() or 1
    n_jobs = int(getattr(launcher, "n_jobs", -1) or -1)
    n_jobs = cores if n_jobs <= 0 else min(n_jobs, cores)
    return max(1, cores // n_jobs)

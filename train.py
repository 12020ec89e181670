"""initlab entry point: ``python train.py [-m] key=value ...`` (see ``--help``)."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from initlab.distributed import is_rank_zero, worker_threads
from initlab.heap import freeze_heap
from initlab.runguard import Interrupted, RunLock, exit_status_on_interrupt, raise_if_interrupted


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    raise_if_interrupted()  # SIGTERM between two jobs: start no other
    hc = HydraConfig.get()
    threads = worker_threads(cfg.get("threads"), hc.launcher)
    if threads:  # parallel workers x threads = cores
        import torch

        torch.set_num_threads(threads)
    if cfg.get("vectorize"):  # hydra/sweeper=vectorized: this job trains K runs at once
        from initlab.vectorized import run_vectorized

        return run_vectorized(cfg)
    multirun = hc.mode == RunMode.MULTIRUN
    out = hc.runtime.output_dir
    # one process per run folder: DDP's other ranks work in rank zero's folder
    lock = RunLock.acquire(out) if is_rank_zero() else None
    if isinstance(lock, str):
        if not multirun:
            print(f"run folder {out} is in use by {lock}: not run here (a folder is "
                  "trained by one command at a time)", file=sys.stderr)
            sys.exit(1)
        return {"status": "skipped", "skip_reason": f"running elsewhere ({lock})"}
    try:
        return _run_job(cfg, hc, out, multirun)
    finally:
        if lock is not None:
            lock.release()


def _run_job(cfg: DictConfig, hc: object, out: str, multirun: bool) -> dict:
    from initlab.pipeline import run
    from initlab.resume import RunFolderConflict, check_run_folder

    try:
        done = check_run_folder(cfg, out)
    except RunFolderConflict as exc:  # nothing is written to a folder that is not ours
        if not multirun:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)
        return {"status": "failed", "refused": True, "error_type": "RunFolderConflict",
                "error": str(exc)}
    if done is not None:  # re-running a sweep command on its folder: keep finished jobs
        done["skipped"] = True
        if not multirun and is_rank_zero():
            print(f"run already finished ({done['status']}), not run again: {out}")
        return done
    try:
        summary = run(
            cfg,
            output_dir=out,
            choices=dict(hc.runtime.choices),
            overrides=list(hc.overrides.task),
            progress_bar=not multirun,
        )
    except Interrupted as exc:
        summary = exc.summary or {"status": "interrupted", "run_name": "?"}
        if multirun:  # the sweep's callback prints the job's line and stops the sweep
            return summary
        if is_rank_zero():
            print(f"run interrupted (SIGTERM): {summary['run_name']}\n  run folder: {out}; "
                  "run the same command again to continue it"
                  + (" from checkpoints/last.ckpt" if cfg.get("checkpoint") else ""),
                  flush=True)
        raise
    if not multirun and is_rank_zero():
        print(f"run {summary['status']}: {summary['run_name']}")
        print(f"  run folder: {out} (summary.json, history.csv, tb/)")
        print(f"  browse:     tensorboard --logdir {out}")
        if summary["status"] == "failed":
            print(f"  error: {summary.get('error_type')}: {summary.get('error')}", file=sys.stderr)
            sys.exit(1)
        raise_if_interrupted()  # SIGTERM in a moment Lightning let pass: still exit 143
    return summary


if __name__ == "__main__":
    try:
        with exit_status_on_interrupt():
            main()
    finally:
        freeze_heap()  # the process ends: no last collection over every object

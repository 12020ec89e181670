"""initlab entry point: ``python train.py [-m] key=value ...`` (see ``--help``)."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from initlab.distributed import is_rank_zero, worker_threads
from initlab.pipeline import run
from initlab.resume import finished_summary


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    hc = HydraConfig.get()
    threads = worker_threads(cfg.get("threads"), hc.launcher)
    if threads:  # parallel workers x threads = cores
        import torch

        torch.set_num_threads(threads)
    if cfg.get("vectorize"):  # hydra/sweeper=vectorized: this job trains K runs at once
        from initlab.vectorized import run_vectorized

        return run_vectorized(cfg)
    multirun = hc.mode == RunMode.MULTIRUN
    done = finished_summary(cfg, hc.runtime.output_dir)
    if done is not None:  # re-running a sweep command on its folder: keep finished jobs
        done["skipped"] = True
        if not multirun and is_rank_zero():
            print(f"run already finished ({done['status']}), not run again: "
                  f"{hc.runtime.output_dir}")
        return done
    summary = run(
        cfg,
        output_dir=hc.runtime.output_dir,
        choices=dict(hc.runtime.choices),
        overrides=list(hc.overrides.task),
        progress_bar=not multirun,
    )
    if not multirun and is_rank_zero():
        print(f"run {summary['status']}: {summary['run_name']}")
        print(f"  run folder: {hc.runtime.output_dir} (summary.json, history.csv, tb/)")
        print(f"  browse:     tensorboard --logdir {hc.runtime.output_dir}")
        if summary["status"] == "failed":
            print(f"  error: {summary.get('error_type')}: {summary.get('error')}", file=sys.stderr)
            sys.exit(1)
    return summary


if __name__ == "__main__":
    main()

"""Learning-rate schedules: the ``lr_scheduler`` config group's objects.

A group option is Lightning's scheduler dict with a factory in place of the object::

    scheduler: {_target_: torch.optim.lr_scheduler.CosineAnnealingLR, _partial_: true, ...}
    interval: epoch   # or step
    frequency: 1

``InitStudyModule.configure_optimizers`` calls the factory with the optimizer (and
``total_steps`` = ``trainer.estimated_stepping_batches`` where the factory takes it
and the config leaves it unset).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

INTERVALS = ("epoch", "step")


def scheduler_spec(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The scheduler dict of an ``lr_scheduler`` config (None for no schedule). A bare
    ``_target_`` (``+lr_scheduler._target_=...``) is a per-epoch schedule. Raises
    ValueError naming a bad key."""
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    if config is None:
        return None
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    config = dict(config)
    if "_target_" in config:  # the scheduler itself, at the group's top
        config = {"scheduler": {**config, "_partial_": True}}
    scheduler = config.get("scheduler")
    if not scheduler:
        return None
    if not isinstance(scheduler, Mapping) or "_target_" not in scheduler:
        raise ValueError(f"lr_scheduler.scheduler={scheduler!r} is not allowed: a config with "
                         "_target_ (e.g. torch.optim.lr_scheduler.CosineAnnealingLR) and "
                         "_partial_: true, or lr_scheduler=none")
    unknown = set(config) - {"scheduler", "interval", "frequency", "monitor", "strict", "name"}
    if unknown:
        raise ValueError(f"lr_scheduler.{sorted(unknown)[0]} is not a key of a scheduler "
                         "config; allowed: scheduler, interval, frequency, monitor, strict, name")
    interval = config.get("interval", "epoch")
    if interval not in INTERVALS:
        raise ValueError(f"lr_scheduler.interval={interval!r} is not allowed; allowed: "
                         f"{', '.join(INTERVALS)}")
    frequency = config.get("frequency", 1)
    if not isinstance(frequency, int) or isinstance(frequency, bool) or frequency < 1:
        raise ValueError(f"lr_scheduler.frequency={frequency!r} is not allowed: an integer >= 1")
    spec = {k: v for k, v in config.items() if k != "scheduler" and v is not None}
    spec.update(interval=interval, frequency=frequency)
    spec["scheduler"] = instantiate({**scheduler, "_partial_": True})
    return spec


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int,
                  warmup_steps: int | None = None, warmup_fraction: float = 0.05,
                  min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over ``warmup_steps`` (default ``warmup_fraction`` of the
    run), then cosine decay to ``min_lr_ratio`` times the base lr at ``total_steps``
    (Loshchilov & Hutter, SGDR, ICLR 2017, without restarts; warm-up as in Goyal et al.
    2017). Multiplier at step t >= w: ``r + (1 - r) (1 + cos(pi (t - w) / (T - w))) / 2``."""
    if total_steps < 1:
        raise ValueError(f"lr_scheduler.scheduler.total_steps={total_steps} must be >= 1")
    if not 0 <= min_lr_ratio <= 1:
        raise ValueError(f"lr_scheduler.scheduler.min_lr_ratio={min_lr_ratio} must be in [0, 1]")
    warm = (int(round(warmup_fraction * total_steps)) if warmup_steps is None
            else int(warmup_steps))
    if not 0 <= warm < total_steps:
        raise ValueError(f"lr_scheduler.scheduler.warmup_steps={warm} must be in "
                         f"[0, total_steps={total_steps})")

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min((step - warm) / max(total_steps - warm, 1), 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

"""Job configs the sweeper composed for its up-front checks, handed to a vectorized job
that runs in the same process (Hydra's basic launcher): the job takes its members'
configs from here instead of composing each again (about 0.1 s a composition here).
A member whose config is not here (another launcher, another process) is composed."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

Key = tuple[str, tuple[str, ...], tuple[str, ...]]
_configs: dict[Key, DictConfig] = {}


def handoff_key(config_name: str | None, hydra_overrides: Sequence[str],
                task_overrides: Sequence[str]) -> Key:
    """What tells one job's composition from another's: the primary config, the hydra
    overrides (in any order) and the job's task overrides (in order)."""
    return (str(config_name), tuple(sorted(map(str, hydra_overrides))),
            tuple(map(str, task_overrides)))


def offer(key: Key, job_cfg: DictConfig) -> None:
    """Keep a job's composed config (with its hydra node) for a vectorized job."""
    _configs[key] = job_cfg


def take(key: Key) -> DictConfig | None:
    """The config offered under ``key`` (given out once), or None."""
    return _configs.pop(key, None)


def clear() -> None:
    """Forget what was offered (the sweep is over)."""
    _configs.clear()

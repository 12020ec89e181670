"""The workarounds that need a library's internals, in one place, version-gated.

- Lightning DDP inside a Hydra job: for ranks > 0 Lightning re-runs ``sys.argv`` (with
  ``hydra.run.dir``) through ``subprocess_script._hydra_subprocess_cmd``. Inside a
  multirun that command holds ``-m`` and the whole sweep, so each child would start the
  sweep again; ``patch_ddp_for_hydra`` installs ``initlab.distributed.job_subprocess_cmd``
  (this job's overrides, this job's folder) in its place.
- Hydra's ``override_dirname`` of a job: the vectorized sweeper names its members'
  folders as an ordinary sweep would, with Hydra's own function.

Each is tested against the installed version (tests/test_compat.py): when an internal
moves, that test fails, and outside the tested range a warning says so at run time.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

# [lowest, first untested) major.minor versions these workarounds were checked with
LIGHTNING_RANGE = ((2, 2), (2, 7))
HYDRA_RANGE = ((1, 3), (1, 4))


def _major_minor(version: str) -> tuple[int, int]:
    parts = (version.split("+")[0].split(".") + ["0", "0"])[:2]
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts)  # type: ignore[return-value]


def in_range(version: str, bounds: tuple[tuple[int, int], tuple[int, int]]) -> bool:
    """Whether ``version`` (e.g. ``2.6.6``) lies in ``[bounds[0], bounds[1])`` by major.minor."""
    return bounds[0] <= _major_minor(version) < bounds[1]


def _warn_untested(name: str, version: str, bounds: tuple[tuple[int, int], tuple[int, int]]
                   ) -> None:
    if not in_range(version, bounds):
        lo, hi = (".".join(map(str, b)) for b in bounds)
        warnings.warn(f"{name} {version} is outside the range initlab's workaround was tested "
                      f"with (>= {lo}, < {hi}); see initlab/compat.py", stacklevel=3)


def patch_ddp_for_hydra(required: bool = True) -> bool:
    """Install ``job_subprocess_cmd`` as Lightning's Hydra child command (idempotent).
    Returns whether it is installed; when Lightning no longer has the hook, raises
    RuntimeError if ``required`` (a DDP run), else returns False."""
    import pytorch_lightning as pl
    from pytorch_lightning.strategies.launchers import subprocess_script as launcher

    from initlab.distributed import job_subprocess_cmd

    if not hasattr(launcher, "_hydra_subprocess_cmd"):
        if required:
            raise RuntimeError(
                f"pytorch_lightning {pl.__version__} moved subprocess_script."
                "_hydra_subprocess_cmd: DDP inside a Hydra job cannot be set up (update "
                "initlab/compat.py, or use a pytorch-lightning version in "
                f"{LIGHTNING_RANGE})")
        return False
    _warn_untested("pytorch_lightning", pl.__version__, LIGHTNING_RANGE)
    launcher._hydra_subprocess_cmd = job_subprocess_cmd
    return True


def overrides_dirname(overrides: Sequence[str], hydra_node: Any) -> str | None:
    """``hydra.job.override_dirname`` of a job with these task overrides, by Hydra's own
    function and the job's settings; None where Hydra's internals moved (the caller then
    composes the job's config instead)."""
    try:
        import hydra
        from hydra._internal.config_loader_impl import get_overrides_dirname
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:
        return None
    _warn_untested("hydra-core", hydra.__version__, HYDRA_RANGE)
    conf = hydra_node.job.config.override_dirname
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return get_overrides_dirname(overrides=parsed, exclude_keys=list(conf.exclude_keys),
                                 item_sep=conf.item_sep, kv_sep=conf.kv_sep)

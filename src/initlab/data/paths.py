"""Where data sets live on disk.

``dataset.data_dir=null`` (the default in every config) means :func:`default_data_dir`:
the environment variable ``INITLAB_DATA_DIR`` when it is set, else ``<project root>/data``.
A relative ``data_dir`` is taken relative to the directory the command was started from
(Hydra's original cwd), not the run directory a job may have changed into.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "INITLAB_DATA_DIR"


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are missing and downloading is off (or failed)."""


class DatasetUnreadableError(ValueError):
    """A data set's files are there but cannot be read (truncated or corrupt)."""


def unreadable(name: str, where: Path, err: BaseException) -> DatasetUnreadableError:
    """The error for data set ``name`` whose file (or folder of files) ``where`` could not
    be read."""
    return DatasetUnreadableError(
        f"dataset {name!r}: could not read {where} ({type(err).__name__}: {err}); a file is "
        "probably truncated or corrupt (an "
        "interrupted download or copy): delete it and download again "
        "(dataset.download=true) or copy it again")


def _launch_dir() -> Path:
    """The directory the command was started from (Hydra's original cwd inside a job)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            from hydra.utils import get_original_cwd

            return Path(get_original_cwd())
    except (ImportError, ValueError):
        pass
    return Path.cwd()


def project_root() -> Path:
    """The initlab checkout: the nearest parent of this package holding its ``pyproject.toml``.

    When the package is installed elsewhere (site-packages), there is no checkout around
    it, and the launch directory is used instead.
    """
    for parent in Path(__file__).resolve().parents:
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file():
            try:
                text = pyproject.read_text(encoding="utf-8")
            except OSError:
                continue
            if 'name = "initlab"' in text:
                return parent
    return _launch_dir()


def default_data_dir() -> Path:
    """``$INITLAB_DATA_DIR`` if set (and non-empty), else ``<project root>/data``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return resolve_data_dir(env)
    return project_root() / "data"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """An absolute data directory: ``None``/empty -> :func:`default_data_dir`; ``~`` expanded;
    relative paths are taken from the launch directory."""
    if data_dir is None or str(data_dir).strip() == "":
        return default_data_dir()
    path = Path(os.path.expandvars(str(data_dir))).expanduser()
    if not path.is_absolute():
        path = _launch_dir() / path
    return path

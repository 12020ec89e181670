"""Where data sets live on disk.

``dataset.data_dir=null`` (the default in every config) means :func:`default_data_dir`:
the environment variable ``INITLAB_DATA_DIR`` when it is set, else ``<project root>/data``.
A relative ``data_dir`` is taken relative to the directory the command was started from
(Hydra's original cwd), not the run directory a job may have changed into.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


def download_failed(name: str, folder: Path, files: Iterable[str], err: BaseException,
                    what: str = "") -> DatasetNotFoundError:
    """The error for data set ``name`` whose download into ``folder`` failed with ``err``:
    the underlying error on one line, and the files (``what`` they are) to put in
    ``folder`` by hand."""
    cause = " ".join(f"{type(err).__name__}: {err}".split())
    return DatasetNotFoundError(
        f"dataset {name!r}: downloading it failed ({cause}). Without network access, put "
        f"the files {', '.join(files)}{f' ({what})' if what else ''} in {folder} (or point "
        f"dataset.data_dir / ${ENV_VAR} at a directory that has them), or retry where the "
        "download works.")


@contextmanager
def removing_created_dirs(folder: Path) -> Iterator[None]:
    """Around a download into ``folder``: if it raises, remove the folders on the way to
    ``folder`` that did not exist before and are empty, deepest first (``rmdir``, so never
    a file, and never a folder that was there before), so a failed download leaves no empty
    ``data/MNIST/raw`` behind."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        yield
    except BaseException:
        for path in created:
            if not path.is_dir():
                continue  # the download failed before making it
            try:
                path.rmdir()
            except OSError:  # not empty (a file the download wrote): keep it and its parents
                break
        raise


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

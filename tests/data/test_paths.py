"""data_dir resolution: env var, project root, relative paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from initlab.data import paths
from initlab.data.mnist import MNISTDataModule


def test_default_is_project_data_dir(monkeypatch) -> None:
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    root = paths.project_root()
    assert (root / "pyproject.toml").is_file() and (root / "src" / "initlab").is_dir()
    assert paths.default_data_dir() == root / "data"
    assert paths.resolve_data_dir(None) == root / "data"


def test_env_var_wins(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    assert paths.default_data_dir() == tmp_path
    assert MNISTDataModule().root == tmp_path
    monkeypatch.setenv(paths.ENV_VAR, "")  # empty counts as unset
    assert paths.default_data_dir() == paths.project_root() / "data"


def test_relative_and_home_paths(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert paths.resolve_data_dir("mydata") == tmp_path / "mydata"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.resolve_data_dir("~/d") == tmp_path / "d"
    assert paths.resolve_data_dir(tmp_path / "abs") == tmp_path / "abs"


def test_a_failed_download_removes_only_the_empty_folders_it_created(tmp_path: Path) -> None:
    from initlab.data.paths import removing_created_dirs

    (tmp_path / "data").mkdir()  # there before: kept
    target = tmp_path / "data" / "MNIST" / "raw"
    with pytest.raises(OSError, match="no network"), removing_created_dirs(target):
        target.mkdir(parents=True)
        raise OSError("no network")
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    assert not (tmp_path / "data" / "MNIST").exists()
    # a file the attempt left (a partial download) is never deleted, nor the folders holding it
    with pytest.raises(OSError), removing_created_dirs(target):
        target.mkdir(parents=True)
        (target / "part.gz").write_bytes(b"12")
        raise OSError("cut")
    assert (target / "part.gz").read_bytes() == b"12"
    # success: nothing is removed, even if empty
    other = tmp_path / "other" / "raw"
    with removing_created_dirs(other):
        other.mkdir(parents=True)
    assert other.is_dir()

"""MNIST / Fashion-MNIST loaders read real IDX files written here (tiny ones)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.data.mnist import IDX_FILES, FashionMNISTDataModule, MNISTDataModule
from initlab.data.paths import DatasetNotFoundError

N_TRAIN, N_TEST = 200, 50


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format (LeCun): magic 0x00 0x00 <type 0x08 = ubyte> <ndim>, big-endian uint32 dims,
    then the data."""
    assert array.dtype == np.uint8
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def make_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random 28x28 images whose pixel (0, 0) encodes the label, to check the pairing."""
    images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
    images[:, 0, 0] = labels * 20
    return images


def write_mnist(root: Path, folder: str = "MNIST") -> dict[str, np.ndarray]:
    """Write train (N_TRAIN) and t10k (N_TEST) IDX files; return their labels."""
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    written = {}
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", make_images(labels, rng))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        written[prefix] = labels
    return written


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    write_mnist(tmp_path)
    return tmp_path


def test_reads_idx_files_with_shapes_and_labels(mnist_root: Path) -> None:
    dm = MNISTDataModule(data_dir=str(mnist_root), download=False, standardize=False)
    dm.prepare()
    (xtr, ytr), (xva, yva), (xte, yte) = (dm.splits[k] for k in ("train", "val", "test"))
    assert xtr.shape == (180, 1, 28, 28) and xva.shape == (20, 1, 28, 28)
    assert xte.shape == (N_TEST, 1, 28, 28)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.long
    assert 0.0 <= float(xtr.min()) and float(xtr.max()) <= 1.0
    for x, y in ((xtr, ytr), (xva, yva), (xte, yte)):
        assert torch.equal(torch.round(x[:, 0, 0, 0] * 255), (y * 20).float())
    # the official test set is kept whole and in file order
    assert torch.equal(yte, torch.from_numpy(write_mnist(mnist_root)["t10k"]).long())
    assert dm.describe()["n_train"] == 180 and dm.input_shape == (1, 28, 28)


def test_standardized_with_train_statistics(mnist_root: Path) -> None:
    dm = MNISTDataModule(data_dir=str(mnist_root), download=False)
    dm.prepare()
    x = dm.splits["train"][0]
    assert abs(float(x.mean())) < 1e-4
    assert abs(float(x.std()) - 1.0) < 1e-3


def test_split_is_fixed_whatever_the_run_seed(mnist_root: Path) -> None:
    a = MNISTDataModule(data_dir=str(mnist_root), download=False, seed=0)
    b = MNISTDataModule(data_dir=str(mnist_root), download=False, seed=7)
    a.prepare(), b.prepare()
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])
    # the run seed changes the batch order only
    xa, _ = next(iter(a.train_dataloader()))
    xb, _ = next(iter(b.train_dataloader()))
    assert not torch.equal(xa, xb)


def test_subset_and_eval_subset(mnist_root: Path) -> None:
    dm = MNISTDataModule(data_dir=str(mnist_root), download=False, subset=30, eval_subset=8)
    info = dm.describe()
    assert (info["n_train"], info["n_val"], info["n_test"]) == (30, 8, 8)


def test_fashion_mnist_reads_its_own_folder(tmp_path: Path) -> None:
    write_mnist(tmp_path, "FashionMNIST")
    dm = FashionMNISTDataModule(data_dir=str(tmp_path), download=False)
    dm.check_available()
    assert dm.describe()["n_test"] == N_TEST
    assert dm.name == "fashion_mnist"
    # MNIST's files are not there
    with pytest.raises(DatasetNotFoundError):
        MNISTDataModule(data_dir=str(tmp_path), download=False).check_available()


@pytest.mark.parametrize("cls", [MNISTDataModule, FashionMNISTDataModule])
def test_missing_files_without_download_fail_clearly(tmp_path: Path, cls) -> None:
    dm = cls(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(FileNotFoundError) as info:
        dm.check_available()
    msg = str(info.value)
    assert dm.name in msg
    assert str(tmp_path / "nowhere" / cls.torchvision_name / "raw") in msg
    assert "dataset.download=true" in msg
    with pytest.raises(DatasetNotFoundError):
        dm.prepare()


def test_partial_files_are_reported(mnist_root: Path) -> None:
    (mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte"):
        MNISTDataModule(data_dir=str(mnist_root), download=False).check_available()


@pytest.mark.parametrize("cls", [MNISTDataModule, FashionMNISTDataModule])
@pytest.mark.parametrize("data_dir_exists", [False, True])
def test_failed_download_names_the_error_folder_and_files_and_leaves_no_empty_folder(
        tmp_path: Path, monkeypatch, refused_url: str, cls, data_dir_exists: bool) -> None:
    # a real torchvision download from an address that refuses connections
    from torchvision import datasets

    monkeypatch.setattr(getattr(datasets, cls.torchvision_name), "mirrors", [refused_url])
    data_dir = tmp_path / "data"
    if data_dir_exists:  # the user's folder and file: kept
        (data_dir / cls.torchvision_name).mkdir(parents=True)
        (data_dir / "notes.txt").write_text("mine")
    dm = cls(data_dir=str(data_dir), download=True)
    assert dm.check_available() == data_dir  # download on: not an error before loading
    with pytest.raises(DatasetNotFoundError) as info:
        dm.prepare()
    msg = str(info.value)
    assert msg.startswith(f"dataset {dm.name!r}: downloading it failed (RuntimeError: ")
    assert refused_url in msg and "Connection refused" in msg and "\n" not in msg
    raw = data_dir / cls.torchvision_name / "raw"
    assert f" in {raw} " in msg
    assert ", ".join(IDX_FILES) in msg  # the four file names torchvision looks for
    assert "dataset.download=true" not in msg  # it is on already
    # only what the attempt created is gone
    assert not raw.exists()
    if data_dir_exists:
        assert (data_dir / cls.torchvision_name).is_dir()
        assert (data_dir / "notes.txt").read_text() == "mine"
    else:
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"subset": 0}, "dataset.subset"),
        ({"eval_subset": -3}, "dataset.eval_subset"),
        ({"val_frac": 1.0}, "dataset.val_frac"),
    ],
)
def test_bad_options_name_the_key(tmp_path: Path, kwargs, key) -> None:
    with pytest.raises(ValueError, match=key):
        MNISTDataModule(data_dir=str(tmp_path), **kwargs)


def test_truncated_files_are_named_with_what_to_do(mnist_root: Path) -> None:
    # an interrupted download or copy: torchvision's reshape error named no file
    from initlab.data.paths import DatasetUnreadableError

    path = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    dm = MNISTDataModule(data_dir=str(mnist_root), download=False)
    with pytest.raises(DatasetUnreadableError, match=r"dataset 'mnist': could not read "
                                                     r".*MNIST/raw .*truncated"):
        dm.prepare()

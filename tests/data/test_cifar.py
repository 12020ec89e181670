"""CIFAR-10 loader reads tiny pickled batches in the official python-version format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.data.cifar import CIFAR10DataModule, read_cifar_batch
from initlab.data.paths import DatasetNotFoundError

PER_BATCH, N_TEST = 20, 10


def write_batch(path: Path, labels: np.ndarray, rng: np.random.Generator) -> None:
    """A batch dict like the official ones: b"data" (N, 3072) uint8 -- the R, G, B planes of
    each 32x32 image in row order -- and b"labels" (list of ints)."""
    images = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    images[:, 0, 0, 0] = labels * 20  # red channel, top-left pixel encodes the label
    images[:, 1, 0, 0] = 7  # green channel marker
    images[:, 2, 31, 31] = 250  # blue channel, bottom-right marker
    entry = {
        b"batch_label": b"testing batch",
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(labels), 3072),
        b"filenames": [b"img%d.png" % i for i in range(len(labels))],
    }
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def write_cifar(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        write_batch(folder / f"data_batch_{i}", rng.integers(0, 10, PER_BATCH), rng)
    write_batch(folder / "test_batch", np.arange(N_TEST) % 10, rng)
    with open(folder / "batches.meta", "wb") as f:
        names = [
            b"airplane",
            b"automobile",
            b"bird",
            b"cat",
            b"deer",
            b"dog",
            b"frog",
            b"horse",
            b"ship",
            b"truck",
        ]
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f, protocol=2)
    return folder


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    write_cifar(tmp_path)
    return tmp_path


def test_read_batch_layout(cifar_root: Path) -> None:
    x, y = read_cifar_batch(cifar_root / "cifar-10-batches-py" / "test_batch")
    assert x.shape == (N_TEST, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(y, torch.arange(N_TEST) % 10)
    assert torch.equal(x[:, 0, 0, 0].long(), y * 20)
    assert (x[:, 1, 0, 0] == 7).all() and (x[:, 2, 31, 31] == 250).all()


def test_loads_splits_with_shapes_and_labels(cifar_root: Path) -> None:
    dm = CIFAR10DataModule(data_dir=str(cifar_root), download=False, standardize=False)
    dm.check_available()
    dm.prepare()
    n = 5 * PER_BATCH
    (xtr, ytr), (xva, yva), (xte, yte) = (dm.splits[k] for k in ("train", "val", "test"))
    assert xtr.shape == (n - n // 10, 3, 32, 32) and xva.shape == (n // 10, 3, 32, 32)
    assert xte.shape == (N_TEST, 3, 32, 32)
    assert xtr.dtype == torch.float32 and float(xtr.max()) <= 1.0
    for x, y in ((xtr, ytr), (xva, yva), (xte, yte)):
        assert torch.equal(torch.round(x[:, 0, 0, 0] * 255).long(), y * 20)
    assert torch.equal(yte, torch.arange(N_TEST) % 10)


def test_standardized_per_channel_with_train_statistics(cifar_root: Path) -> None:
    dm = CIFAR10DataModule(data_dir=str(cifar_root), download=False)
    dm.prepare()
    x = dm.splits["train"][0]
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-4)
    assert torch.allclose(std, torch.ones(3), atol=1e-3)


def test_augment_applies_to_train_batches_only(cifar_root: Path) -> None:
    plain = CIFAR10DataModule(data_dir=str(cifar_root), download=False, batch_size=16)
    aug = CIFAR10DataModule(data_dir=str(cifar_root), download=False, batch_size=16, augment=True)
    assert plain.train_transform is None and aug.train_transform is not None
    plain.prepare(), aug.prepare()
    (xp, yp), (xa, ya) = next(iter(plain.train_dataloader())), next(iter(aug.train_dataloader()))
    assert torch.equal(yp, ya) and xa.shape == xp.shape
    assert not torch.equal(xa, xp)
    vp, va = next(iter(plain.val_dataloader())), next(iter(aug.val_dataloader()))
    assert torch.equal(vp[0], va[0])
    # reproducible: same seed, same augmented batch
    again = CIFAR10DataModule(data_dir=str(cifar_root), download=False, batch_size=16, augment=True)
    again.prepare()
    assert torch.equal(next(iter(again.train_dataloader()))[0], xa)


def test_missing_files_without_download_fail_clearly(tmp_path: Path) -> None:
    dm = CIFAR10DataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(FileNotFoundError) as info:
        dm.check_available()
    msg = str(info.value)
    assert "cifar10" in msg and str(tmp_path / "cifar-10-batches-py") in msg
    assert "dataset.download=true" in msg
    with pytest.raises(DatasetNotFoundError):
        dm.prepare()


def test_one_missing_batch_is_named(cifar_root: Path) -> None:
    (cifar_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        CIFAR10DataModule(data_dir=str(cifar_root), download=False).check_available()


def test_failed_download_names_the_error_folder_and_files_and_leaves_no_empty_folder(
        tmp_path: Path, monkeypatch, refused_url: str) -> None:
    # a real download (torchvision's, as CIFAR10DataModule.fetch does it) from an address
    # that refuses connections
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "url", refused_url + CIFAR10.filename)
    data_dir = tmp_path / "data" / "vision"  # neither exists: the attempt creates both
    dm = CIFAR10DataModule(data_dir=str(data_dir), download=True)
    dm.check_available()  # download on: nothing to complain about before loading
    with pytest.raises(DatasetNotFoundError) as info:
        dm.prepare()
    msg = str(info.value)
    assert msg.startswith("dataset 'cifar10': downloading it failed (URLError: ")
    assert "Connection refused" in msg and "\n" not in msg
    assert f" in {data_dir / 'cifar-10-batches-py'} " in msg
    assert "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch" \
        in msg and "cifar-10-python.tar.gz" in msg
    assert "dataset.download=true" not in msg
    assert list(tmp_path.iterdir()) == []  # no empty data/vision left


def test_bad_options_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dataset.augment_pad"):
        CIFAR10DataModule(data_dir=str(tmp_path), augment_pad=-1)
    with pytest.raises(ValueError, match="dataset.subset"):
        CIFAR10DataModule(data_dir=str(tmp_path), subset=0)


def test_truncated_batch_file_is_named_with_what_to_do(cifar_root: Path) -> None:
    from initlab.data.paths import DatasetUnreadableError

    path = cifar_root / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(path.read_bytes()[:500])
    dm = CIFAR10DataModule(data_dir=str(cifar_root), download=False)
    with pytest.raises(DatasetUnreadableError, match=r"dataset 'cifar10': could not read "
                                                     r".*cifar-10-batches-py/data_batch_1 "):
        dm.prepare()

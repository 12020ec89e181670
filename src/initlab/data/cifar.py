"""CIFAR-10 held in memory as tensors, with optional batched crop + flip augmentation.

On-disk format: the "python version" of CIFAR-10, ``<data_dir>/cifar-10-batches-py/``
with pickled batches ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``; each is a
dict with ``data`` (``(10000, 3072)`` uint8, rows are R, G, B planes of 32x32 pixels) and
``labels`` (list of ints), plus ``batches.meta`` (label names).

Why our own reader: ``torchvision.datasets.CIFAR10`` verifies the md5 of every batch file
each time it is constructed (hashing ~180 MB per run) and accepts nothing but the
official bytes. We read the same pickle format directly (a few lines), and use torchvision
only to *download* the archive (``download_and_extract_archive`` with torchvision's own
URL and archive md5), so fetched data is still checked once. Files are only unpickled
from the data directory you configure -- as with torchvision, do not point it at
untrusted files.
"""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from torch import Tensor

from initlab.data.augment import random_crop_flip
from initlab.data.base import lightning_twins
from initlab.data.mnist import FileData
from initlab.data.paths import download_failed, removing_created_dirs, unreadable

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)


def read_cifar_batch(path: str | Path) -> tuple[Tensor, Tensor]:
    """One pickled CIFAR batch -> ``(uint8 images (N, 3, 32, 32), int64 labels (N,))``."""
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")  # latin1: the official files are Python 2 pickles

    def get(key: str):
        for k in (key, key.encode()):
            if k in entry:
                return entry[k]
        raise KeyError(f"{path}: no {key!r} entry; not a CIFAR-10 batch file")

    data = np.asarray(get("data"), dtype=np.uint8)
    labels = np.asarray(get("labels"), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(
            f"{path}: expected data (N, 3072) and N labels, got {data.shape} and {labels.shape}"
        )
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


class CIFAR10Data(FileData):
    """CIFAR-10: 50,000 train (minus ``val_frac`` for validation) + 10,000 test images,
    ``(3, 32, 32)``, 10 classes. ``augment=True`` applies random crop (zero padding
    ``augment_pad``) + horizontal flip to training batches only."""

    name = "cifar10"
    task = "classification"
    num_outputs = 10
    input_shape = (3, 32, 32)

    FILES = TRAIN_FILES + TEST_FILES
    FILES_HINT = "the python-version batches"

    def __init__(self, augment: bool = False, augment_pad: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(augment_pad, bool) or not isinstance(augment_pad, int) or augment_pad < 0:
            raise ValueError(f"dataset.augment_pad={augment_pad!r} must be an integer >= 0")
        self.augment = bool(augment)
        self.augment_pad = augment_pad
        if self.augment:
            self.train_transform = partial(random_crop_flip, pad=augment_pad)

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    def fetch(self) -> None:
        """Download and extract the official archive with torchvision (md5-checked)."""
        from torchvision.datasets import CIFAR10
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            with removing_created_dirs(self.folder):
                download_and_extract_archive(
                    CIFAR10.url, str(self.root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
                )
        except (RuntimeError, URLError, OSError) as err:
            files = [p.name for p in self.missing_files()] or list(self.FILES)
            raise download_failed(self.name, self.folder, files, err,
                                  f"the python version: {CIFAR10.filename} extracted") from err

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        self.check_available()
        if self.missing_files():
            self.fetch()

        def read(files: tuple[str, ...]) -> tuple[Tensor, Tensor]:
            parts = []
            for f in files:
                try:
                    parts.append(read_cifar_batch(self.folder / f))
                except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as err:
                    raise unreadable(self.name, self.folder / f, err) from err
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

        x_train, y_train = read(TRAIN_FILES)
        x_test, y_test = read(TEST_FILES)
        return self.splits_from(x_train.to(torch.float32).div_(255.0), y_train,
                                x_test.to(torch.float32).div_(255.0), y_test)


# the LightningDataModules of configs' _target_, made on first access (see base.py)
__getattr__ = lightning_twins(__name__, {"CIFAR10DataModule": CIFAR10Data})

"""MNIST and Fashion-MNIST through torchvision, held in memory as tensors.

torchvision reads (and, with ``download=True``, fetches) the IDX files
``<data_dir>/<MNIST|FashionMNIST>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``; it
only checks that they exist, so any correct IDX file loads. We keep its raw
``dataset.data`` / ``dataset.targets`` tensors (no per-sample iteration): images become
``(N, 1, 28, 28)`` floats in [0, 1], then the base class standardizes them with the
training statistics.

Splits: the official training set is split into train and validation (``val_frac``, with a
fixed split seed so every run of a sweep sees the same split), the official test set is
the test split. ``subset`` / ``eval_subset`` shrink train / val+test for fast runs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import torch
from torch import Tensor

from initlab.data.base import InMemoryData, lightning_twins, split_indices
from initlab.data.paths import (
    DatasetNotFoundError,
    download_failed,
    removing_created_dirs,
    resolve_data_dir,
    unreadable,
)

SPLIT_SEED = 1234  # fixed: the train/val split must not depend on the run seed

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _check_optional_positive(key: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"dataset.{key}={value!r} must be a positive integer or null (all)")


def vision_splits(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    val_frac: float,
    subset: int | None = None,
    eval_subset: int | None = None,
) -> dict[str, tuple[Tensor, Tensor]]:
    """Official train -> train + val (seeded ``val_frac`` split); official test -> test.

    ``subset`` keeps that many training examples, ``eval_subset`` that many validation and
    test examples; both are random (fixed-seed) subsets, not the first rows of the files.
    """
    tr, va, _ = split_indices(len(x_train), val_frac, 0.0, seed=SPLIT_SEED)
    te = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(SPLIT_SEED))
    if subset is not None:
        tr = tr[:subset]
    if eval_subset is not None:
        va, te = va[:eval_subset], te[:eval_subset]
    else:
        te = te.sort().values  # the whole official test set, in file order
    return {
        "train": (x_train[tr], y_train[tr]),
        "val": (x_train[va], y_train[va]),
        "test": (x_test[te], y_test[te]),
    }


class FileData(InMemoryData):
    """An image data set read from files under ``data_dir``: the options every such data
    set has, and the check that fails before training when files are missing.

    Subclasses set ``folder`` (where the files are), ``FILES`` and ``FILES_HINT`` (what to
    put there, for the error message)."""

    FILES: tuple[str, ...] = ()
    FILES_HINT = "the data files"

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = True,
        val_frac: float = 0.1,
        subset: int | None = None,
        eval_subset: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= val_frac < 1:
            raise ValueError(f"dataset.val_frac={val_frac} must be in [0, 1)")
        _check_optional_positive("subset", subset)
        _check_optional_positive("eval_subset", eval_subset)
        self.data_dir = data_dir
        self.download = bool(download)
        self.val_frac = val_frac
        self.subset = subset
        self.eval_subset = eval_subset

    @property
    def root(self) -> Path:
        """The resolved ``data_dir`` (torchvision's ``root``)."""
        return resolve_data_dir(self.data_dir)

    @property
    def folder(self) -> Path:
        raise NotImplementedError

    def missing_files(self) -> list[Path]:
        """The files that are not on disk (empty when the data set is there)."""
        return [self.folder / f for f in self.FILES if not (self.folder / f).is_file()]

    def check_available(self) -> Path:
        """Fail before training when the files are missing and ``download`` is off.

        Cheap (a few ``stat`` calls, nothing is read or downloaded); returns the data
        directory. With ``download=True`` missing files are fetched by :meth:`load`.
        """
        missing = self.missing_files()
        if missing and not self.download:
            names = ", ".join(p.name for p in missing)
            raise DatasetNotFoundError(
                f"dataset {self.name!r} not found: missing {names} in {self.folder} "
                f"(data_dir={self.root}). dataset.download=false, so nothing is downloaded: "
                f"set dataset.download=true, or put {self.FILES_HINT} there (or point "
                f"dataset.data_dir / $INITLAB_DATA_DIR at a directory that has them)."
            )
        return self.root

    def splits_from(self, x_train: Tensor, y_train: Tensor, x_test: Tensor,
                    y_test: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        return vision_splits(x_train, y_train, x_test, y_test, self.val_frac, self.subset,
                             self.eval_subset)


class MNISTData(FileData):
    """MNIST digits: 60,000 train (minus ``val_frac`` for validation) + 10,000 test images,
    ``(1, 28, 28)``, 10 classes."""

    name = "mnist"
    task = "classification"
    num_outputs = 10
    input_shape = (1, 28, 28)
    torchvision_name = "MNIST"  # the torchvision class, also its folder under data_dir
    FILES = IDX_FILES
    FILES_HINT = "the IDX files"
    FILES_WHAT = "the IDX files, gunzipped"

    @property
    def raw_dir(self) -> Path:
        return self.root / self.torchvision_name / "raw"

    @property
    def folder(self) -> Path:
        return self.raw_dir

    def missing_files(self) -> list[Path]:
        """The raw IDX files that are not on disk (empty when the data set is there).

        torchvision's legacy ``processed/{training,test}.pt`` cache also counts as present.
        """
        processed = self.root / self.torchvision_name / "processed"
        if all((processed / f).is_file() for f in ("training.pt", "test.pt")):
            return []
        return super().missing_files()

    def _torchvision(self, train: bool):
        from torchvision import datasets

        cls = getattr(datasets, self.torchvision_name)
        try:
            with removing_created_dirs(self.raw_dir):
                return cls(root=str(self.root), train=train, download=self.download)
        except (RuntimeError, URLError, OSError) as err:
            missing = self.missing_files()
            if not missing:  # the files are there but do not read
                raise unreadable(self.name, self.raw_dir, err) from err
            if self.download:
                raise download_failed(self.name, self.raw_dir, [p.name for p in missing],
                                      err, self.FILES_WHAT) from err
            raise DatasetNotFoundError(
                f"dataset {self.name!r} is not in {self.raw_dir} ({err}); "
                f"dataset.download=false: set dataset.download=true or put the files "
                f"{', '.join(p.name for p in missing)} there."
            ) from err

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        self.check_available()
        train, test = self._torchvision(train=True), self._torchvision(train=False)

        def to_float(images: Tensor) -> Tensor:
            return images.unsqueeze(1).to(torch.float32).div_(255.0)

        return self.splits_from(to_float(train.data), train.targets.long(),
                                to_float(test.data), test.targets.long())


class FashionMNISTData(MNISTData):
    """Fashion-MNIST (Xiao et al. 2017): same format and sizes as MNIST, 10 clothing classes."""

    name = "fashion_mnist"
    torchvision_name = "FashionMNIST"


# the LightningDataModules of configs' _target_, made on first access (see base.py)
__getattr__ = lightning_twins(__name__, {"FileDataModule": FileData, "MNISTDataModule": MNISTData,
                                         "FashionMNISTDataModule": FashionMNISTData})

"""scikit-learn's bundled ``digits``: 1,797 real 8x8 grey images, 10 classes, offline."""

from __future__ import annotations

import torch
from torch import Tensor

from initlab.data.base import InMemoryData, lightning_twins, split_indices


class DigitsData(InMemoryData):
    """The embedded default data set; images are (1, 8, 8), flattened by MLPs.
    ``image_size``: upsample (bilinear) to (1, size, size), e.g. 32 for a CNN at the
    resolution of CIFAR-10."""

    name = "digits"
    task = "classification"
    num_outputs = 10
    input_shape = (1, 8, 8)

    def __init__(self, val_frac: float = 0.15, test_frac: float = 0.15,
                 image_size: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if image_size is not None and (not isinstance(image_size, int)
                                       or isinstance(image_size, bool) or image_size < 1):
            raise ValueError(f"dataset.image_size={image_size!r} is not allowed: null (8x8) "
                             "or an integer >= 1")
        self.val_frac, self.test_frac = val_frac, test_frac
        self.image_size = image_size
        if image_size is not None:
            self.input_shape = (1, image_size, image_size)

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(data.target, dtype=torch.long)
        if self.image_size is not None and self.image_size != 8:
            x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size),
                                                mode="bilinear", align_corners=False)
        # split seed is fixed so every run of a sweep sees the same split whatever its seed
        tr, va, te = split_indices(len(x), self.val_frac, self.test_frac, seed=1234)
        return {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[te], y[te])}


# the LightningDataModules of configs' _target_, made on first access (see base.py)
__getattr__ = lightning_twins(__name__, {"DigitsDataModule": DigitsData})

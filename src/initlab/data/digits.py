"""scikit-learn's bundled ``digits``: 1,797 real 8x8 grey images, 10 classes, offline."""

from __future__ import annotations

import torch
from torch import Tensor

from initlab.data.base import InMemoryDataModule, split_indices


class DigitsDataModule(InMemoryDataModule):
    """The embedded default data set; images are (1, 8, 8), flattened by MLPs."""

    name = "digits"
    task = "classification"
    num_outputs = 10
    input_shape = (1, 8, 8)

    def __init__(self, val_frac: float = 0.15, test_frac: float = 0.15, **kwargs) -> None:
        super().__init__(**kwargs)
        self.val_frac, self.test_frac = val_frac, test_frac

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(data.target, dtype=torch.long)
        # split seed is fixed so every run of a sweep sees the same split whatever its seed
        tr, va, te = split_indices(len(x), self.val_frac, self.test_frac, seed=1234)
        return {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[te], y[te])}

"""In-memory batching for data sets that fit in memory.

A ``TensorBatcher`` yields batches by indexing whole tensors with a permutation:
no per-sample ``__getitem__`` and no collate, which is what makes small-data
training (digits, MNIST) fast. Lightning accepts any sized iterable as a loader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

BatchTransform = Callable[[Tensor, torch.Generator], Tensor]


class TensorBatcher:
    """Iterate over ``(x, y)`` mini-batches of in-memory tensors.

    Shuffling uses its own generator seeded with ``seed`` and the epoch counter,
    so the batch order is reproducible and does not depend on the global RNG.
    ``transform`` (e.g. random crop + flip) is applied to each input batch.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        transform: BatchTransform | None = None,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.transform = transform
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def to(self, device: torch.device | str) -> TensorBatcher:
        """Move the held tensors (e.g. onto the GPU once, instead of per batch)."""
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self

    def order(self, epoch: int) -> Tensor:
        """The sample order of ``epoch`` (identity when not shuffling)."""
        if not self.shuffle:
            return torch.arange(len(self.x), device=self.x.device)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(len(self.x), generator=g).to(self.x.device)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        idx = self.order(self.epoch)
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + 1)
        self.epoch += 1
        for i in range(len(self)):
            sel = idx[i * self.batch_size : (i + 1) * self.batch_size]
            xb = self.x[sel]
            if self.transform is not None:
                xb = self.transform(xb, g)
            yield xb, self.y[sel]

"""In-memory batching for data sets that fit in memory.

A ``TensorBatcher`` yields batches by indexing whole tensors with a permutation:
no per-sample ``__getitem__`` and no collate, which is what makes small-data
training (digits, MNIST) fast. Lightning accepts any sized iterable as a loader; the data
module gives the training loader ``trainer.current_epoch`` as its epoch source, read when
an epoch's pass starts, so a run resumed from a checkpoint sees the order of the epoch it
resumes at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

BatchTransform = Callable[[Tensor, torch.Generator], Tensor]
AUGMENT_STREAM = 50_000  # below 100_003: no epoch count meets another stream


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
        # where a pass reads its epoch (e.g. the trainer's); None: passes count themselves
        self.epoch_source: Callable[[], int] | None = None

    @staticmethod
    def _shard() -> tuple[int, int]:
        """(rank, world size) under torch.distributed, else (0, 1)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def num_batches(self) -> int:
        """Minibatches per epoch (per rank); every rank gets the same number, or DDP
        collectives would hang."""
        n = len(self.x) // self._shard()[1]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        return self.num_batches()

    def set_epoch(self, epoch: int) -> None:
        """Select the batch order of ``epoch`` (a run resumed from a checkpoint then sees
        the same order as an uninterrupted one)."""
        self.epoch = epoch

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
        return self.batches()

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The epoch's ``(x, y)`` minibatches, one by one (advances the epoch)."""
        if self.epoch_source is not None:
            self.epoch = int(self.epoch_source())
        idx = self.order(self.epoch)
        rank, world = self._shard()
        if world > 1:  # DistributedSampler semantics: disjoint, equal-sized shards
            idx = idx[: len(idx) // world * world][rank::world]
        # the augmentation stream: offset from the shuffle seeds (seed * 100_003 + epoch),
        # which it used to meet one epoch later (epoch e's crops = epoch e+1's order)
        g = torch.Generator().manual_seed(self.seed * 100_003 + AUGMENT_STREAM + self.epoch)
        self.epoch += 1
        for i in range(self.num_batches()):
            sel = idx[i * self.batch_size : (i + 1) * self.batch_size]
            xb = self.x[sel]
            if self.transform is not None:
                xb = self.transform(xb, g)
            yield xb, self.y[sel]

"""Base LightningDataModule for data held in memory as tensors."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor

from initlab.data.batcher import BatchTransform, TensorBatcher

TASKS = ("classification", "regression")


def split_indices(n: int, val_frac: float, test_frac: float, seed: int) -> tuple[Tensor, ...]:
    """Deterministic train/val/test index split of ``n`` samples."""
    for key, frac in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0 <= frac < 1:
            raise ValueError(f"dataset.{key}={frac} must be in [0, 1)")
    if val_frac + test_frac >= 1:
        total = val_frac + test_frac
        raise ValueError(f"dataset.val_frac + dataset.test_frac = {total} must be < 1")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val, n_test = int(round(n * val_frac)), int(round(n * test_frac))
    return perm[n_val + n_test :], perm[:n_val], perm[n_val : n_val + n_test]


class InMemoryDataModule(pl.LightningDataModule):
    """Holds train/val/test tensors and serves them through ``TensorBatcher``.

    Subclasses implement ``load()`` returning ``{"train": (x, y), "val": ..., "test": ...}``
    and set ``task``, ``num_outputs`` and ``input_shape`` (per example) there.
    Inputs are standardized with statistics of the training split only.
    """

    task: str = "classification"
    num_outputs: int = 0
    input_shape: tuple[int, ...] = ()
    name: str = "data"

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int = 512,
        seed: int = 0,
        standardize: bool = True,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"dataset.batch_size={batch_size} must be > 0")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.standardize = standardize
        self.device = device
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        self.train_transform: BatchTransform | None = None
        self._loaders: dict[str, TensorBatcher] = {}

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Load once (idempotent); also called before ``setup`` to learn shapes."""
        if self.splits:
            return
        splits = self.load()
        if self.standardize:
            x_train = splits["train"][0]
            dims = (0,) if x_train.dim() == 2 else tuple(i for i in range(x_train.dim()) if i != 1)
            mean = x_train.mean(dim=dims, keepdim=True)
            std = x_train.std(dim=dims, keepdim=True).clamp_min(1e-6)
            splits = {k: ((x - mean) / std, y) for k, (x, y) in splits.items()}
        if self.device is not None:
            splits = {k: (x.to(self.device), y.to(self.device)) for k, (x, y) in splits.items()}
        self.splits = splits

    def setup(self, stage: str | None = None) -> None:
        self.prepare()
        self._to_training_device()

    def _to_training_device(self) -> None:
        """Hold the data where the model trains (e.g. the GPU of this DDP rank), moved once:
        batches are then indexed on the device, with no host-to-device copy per step.
        ``device`` given explicitly wins; CPU training leaves the tensors where they are."""
        trainer = getattr(self, "trainer", None)
        if self.device is not None or trainer is None:
            return
        target = trainer.strategy.root_device
        x = next(iter(self.splits.values()))[0]
        if target.type == "cpu" or x.device == target:
            return
        self.splits = {k: (x.to(target), y.to(target)) for k, (x, y) in self.splits.items()}
        self._loaders.clear()

    def sample_batch(self, n: int, split: str = "train", seed: int | None = None
                     ) -> tuple[Tensor, Tensor]:
        """A fixed batch of ``n`` examples (the first ``n`` in an order seeded with ``seed``,
        by default the data module's: what the run of that seed draws)."""
        self.prepare()
        x, y = self.splits[split]
        g = torch.Generator().manual_seed(self.seed if seed is None else seed)
        idx = torch.randperm(len(x), generator=g)[:n]
        return x[idx.to(x.device)], y[idx.to(x.device)]

    def _loader(self, split: str, train: bool) -> TensorBatcher:
        if split not in self._loaders:
            x, y = self.splits[split]
            self._loaders[split] = TensorBatcher(
                x,
                y,
                self.batch_size if train else self.eval_batch_size,
                shuffle=train,
                seed=self.seed,
                transform=self.train_transform if train else None,
            )
        return self._loaders[split]

    def train_dataloader(self) -> TensorBatcher:
        loader = self._loader("train", train=True)
        # each epoch's pass reads the trainer's epoch when it starts: a resumed run goes
        # on with the order of the epoch it resumes at
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            loader.epoch_source = lambda: trainer.current_epoch
        return loader

    def val_dataloader(self) -> TensorBatcher:
        return self._loader("val", train=False)

    def test_dataloader(self) -> TensorBatcher:
        return self._loader("test", train=False)

    def describe(self) -> dict[str, object]:
        self.prepare()
        return {
            "name": self.name,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            **{f"n_{k}": len(v[0]) for k, v in self.splits.items()},
        }

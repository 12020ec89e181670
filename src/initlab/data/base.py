"""Base class for data held in memory as tensors, and its Lightning twins.

Every data set is a plain class (``InMemoryData`` and its subclasses, e.g. ``DigitsData``)
that needs nothing of Lightning: the vectorized engine uses those, so a sweep need not
import pytorch_lightning (seconds, through torchmetrics and torchvision). Each plain class
has a ``LightningDataModule`` twin of the old name (``DigitsDataModule``), made on first
access by the module's PEP 562 ``__getattr__`` (:func:`lightning_twins`), for configs'
``_target_`` and the Lightning engine.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

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


class InMemoryData:
    """Holds train/val/test tensors and serves them through ``TensorBatcher``.

    A plain class (no Lightning): its twin ``InMemoryDataModule`` adds
    ``LightningDataModule``. Reads ``self.trainer`` only when a Trainer has set it.
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
        super().__init__()  # no arguments: LightningDataModule's __init__ in a twin
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


# Lightning twins. A twin is ``type(name, (plain, <twin of plain's nearest registered
# ancestor>), ...)``, made once and cached: pickle finds the class again by module and
# name, and isinstance / issubclass between twins need one object per class.
_TWIN_TABLES: dict[str, dict[str, type[InMemoryData]]] = {}  # module -> {twin name: plain}
_TWIN_NAMES: dict[type[InMemoryData], tuple[str, str]] = {}  # plain -> (module, twin name)
_MADE: dict[type[InMemoryData], type] = {}  # plain -> its twin
_LOCK = threading.RLock()  # two threads' first access must not make two classes


def lightning_class(plain: type[InMemoryData]) -> type:
    """The ``LightningDataModule`` twin of a registered plain class (made on first call).

    Its bases are ``plain`` and the twin of the nearest ancestor of ``plain`` that has one
    (``InMemoryData``'s is ``InMemoryDataModule``, whose bases are ``InMemoryData`` and
    ``LightningDataModule``), so the twins form the same hierarchy as the plain classes.
    """
    with _LOCK:
        if plain in _MADE:
            return _MADE[plain]
        if plain not in _TWIN_NAMES:
            raise TypeError(f"{plain.__qualname__} has no Lightning twin: register it with "
                            "lightning_twins(__name__, {'<Name>DataModule': <plain class>})")
        module, name = _TWIN_NAMES[plain]
        if plain is InMemoryData:
            import pytorch_lightning as pl

            parent: type = pl.LightningDataModule
        else:
            ancestor = next(c for c in plain.__mro__[1:] if c in _TWIN_NAMES)
            parent = lightning_class(ancestor)
        doc = (f"{plain.__doc__ or ''}\n\nThe LightningDataModule twin of "
               f":class:`{plain.__module__}.{plain.__qualname__}`.")
        twin = type(name, (plain, parent),
                    {"__module__": module, "__qualname__": name, "__doc__": doc})
        _MADE[plain] = twin
        return twin


def lightning_twins(module: str, twins: Mapping[str, type[InMemoryData]]
                    ) -> Callable[[str], Any]:
    """Register the Lightning twins of a data module and return its PEP 562 ``__getattr__``:
    ``__getattr__ = lightning_twins(__name__, {"DigitsDataModule": DigitsData})``.

    ``from initlab.data.digits import DigitsDataModule`` then imports Lightning and makes
    the class; importing the module alone does neither."""
    table = dict(twins)
    with _LOCK:
        _TWIN_TABLES[module] = table
        for name, plain in table.items():
            _TWIN_NAMES[plain] = (module, name)

    def __getattr__(name: str) -> Any:
        plain = table.get(name)
        if plain is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return lightning_class(plain)

    return __getattr__


def _is_lightning(cls: type) -> bool:
    return any(c.__module__.split(".")[0] in ("pytorch_lightning", "lightning")
               for c in cls.__mro__)


def plain_data_class(target: str) -> str | None:
    """The import path of the plain twin of a data set's ``_target_``, without importing
    Lightning: ``"initlab.data.digits.DigitsDataModule"`` -> ``"initlab.data.digits.
    DigitsData"``. A target that is already a plain ``InMemoryData`` class is returned as
    it is; None when the target has no plain twin (e.g. a LightningDataModule of your own).
    """
    module_name, _, name = str(target).rpartition(".")
    if not module_name:
        return None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name + ".").startswith(err.name + "."):
            return None  # no such module: instantiating the target reports it
        raise
    plain = _TWIN_TABLES.get(module.__name__, {}).get(name)
    if plain is not None:
        return f"{plain.__module__}.{plain.__qualname__}"
    obj = vars(module).get(name)  # vars: no module __getattr__, so no twin is made
    if isinstance(obj, type) and issubclass(obj, InMemoryData) and not _is_lightning(obj):
        return target
    return None


__getattr__ = lightning_twins(__name__, {"InMemoryDataModule": InMemoryData})

"""Synthetic token-sequence tasks for transformers, generated in memory (no files).

Inputs are token ids ``(N, T)`` (int64); targets are the answer token(s): ``(N,)`` for
one answer, ``(N, answer_len)`` for several, classified per token (the loss and the
accuracy are per answer token). Each data module tells the model its input vocabulary
and answer length through ``model_hints`` (``vocab_size``, ``answer_len``); the answer
classes (``num_outputs``) are the first tokens of the vocabulary.

The data come from ``data_seed``, independent of the run seed (every run of a sweep sees
the same examples; only the batch order follows the run seed).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor

from initlab.data.base import InMemoryData, lightning_twins
from initlab.data.synthetic import SPLITS, _check_count, _split_generator

SEQUENCE_TASKS = ("copy", "reverse", "sort")


def modular_addition(p: int, train_frac: float, generator: torch.Generator
                     ) -> dict[str, tuple[Tensor, Tensor]]:
    """Every pair ``(a, b)``, ``0 <= a, b < p``, as ``[a, +, b, =]`` with label
    ``(a + b) mod p`` (Power et al. 2022, "Grokking"; Liu et al. 2022, "Omnigrok"). Tokens
    ``0..p-1`` are the numbers, ``p`` is ``+`` and ``p + 1`` is ``=``. A random
    ``train_frac`` of the ``p^2`` pairs is the training split; the rest is halved into
    validation and test."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    x = torch.stack([a, torch.full_like(a, p), b, torch.full_like(a, p + 1)], dim=1)
    y = (a + b) % p
    perm = torch.randperm(p * p, generator=generator)
    n_train = int(round(train_frac * p * p))
    n_val = (p * p - n_train) // 2
    idx = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val],
           "test": perm[n_train + n_val:]}
    return {split: (x[i], y[i]) for split, i in idx.items()}


def sequence_task(task: str, n: int, length: int, symbols: int, generator: torch.Generator
                  ) -> tuple[Tensor, Tensor]:
    """``n`` examples of copy / reverse / sort over ``symbols`` symbols (tokens
    ``0..symbols-1``; ``symbols`` is the separator). The input is ``source, SEP,
    target[:-1]`` (teacher forcing: position ``length + i`` predicts ``target[i]``), the
    label the ``length`` target tokens: the source itself, reversed, or sorted."""
    if task not in SEQUENCE_TASKS:
        raise ValueError(f"dataset.task={task!r} is not known; allowed: "
                         f"{', '.join(SEQUENCE_TASKS)}")
    src = torch.randint(0, symbols, (n, length), generator=generator)
    if task == "copy":
        tgt = src
    elif task == "reverse":
        tgt = src.flip(1)
    else:
        tgt = src.sort(dim=1).values
    sep = torch.full((n, 1), symbols, dtype=src.dtype)
    return torch.cat([src, sep, tgt[:, :-1]], dim=1), tgt.clone()


class TokenData(InMemoryData):
    """Token sequences: never standardized; ``model_hints`` for the model's embedding."""

    vocab_size: int = 0
    answer_len: int = 1

    def __init__(self, **kwargs: Any) -> None:
        kwargs["standardize"] = False
        super().__init__(**kwargs)

    @property
    def model_hints(self) -> dict[str, int]:
        return {"vocab_size": self.vocab_size, "answer_len": self.answer_len}

    def describe(self) -> dict[str, object]:
        return {**super().describe(), **self.model_hints}


class ModAddData(TokenData):
    """Modular addition ``a + b mod p`` (see :func:`modular_addition`)."""

    name = "modadd"

    def __init__(self, p: int = 97, train_frac: float = 0.5, data_seed: int = 0,
                 standardize: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_count("p", p, minimum=2)
        if not (isinstance(train_frac, float | int) and 0 < train_frac < 1):
            raise ValueError(f"dataset.train_frac={train_frac!r} must be a number in (0, 1)")
        self.p, self.train_frac, self.data_seed = p, float(train_frac), data_seed
        self.num_outputs, self.vocab_size = p, p + 2
        self.input_shape = (4,)

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        return modular_addition(self.p, self.train_frac, _split_generator(self.data_seed, "train"))


class SequenceData(TokenData):
    """copy / reverse / sort of random sequences (see :func:`sequence_task`)."""

    def __init__(self, task: str = "copy", length: int = 8, symbols: int = 10,
                 n_train: int = 4000, n_val: int = 500, n_test: int = 500, data_seed: int = 0,
                 standardize: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if task not in SEQUENCE_TASKS:
            raise ValueError(f"dataset.task={task!r} is not known; allowed: "
                             f"{', '.join(SEQUENCE_TASKS)}")
        _check_count("length", length, minimum=2)
        _check_count("symbols", symbols, minimum=2)
        _check_count("n_train", n_train)
        _check_count("n_val", n_val, minimum=0)
        _check_count("n_test", n_test, minimum=0)
        self.task_name, self.length, self.symbols = task, length, symbols
        self.name = task
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.data_seed = data_seed
        self.num_outputs, self.vocab_size = symbols, symbols + 1
        self.answer_len = length
        self.input_shape = (2 * length,)

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        return {split: sequence_task(self.task_name, self.sizes[split], self.length,
                                     self.symbols, _split_generator(self.data_seed, split))
                for split in SPLITS}


def model_hints(model_cfg: Any, datamodule: Any) -> dict[str, Any]:
    """The data module's ``model_hints`` that the model's constructor takes (none for
    models without a ``vocab_size`` argument, or data modules without hints)."""
    hints = getattr(datamodule, "model_hints", None) or {}
    if not hints:
        return {}
    from hydra.utils import get_class

    try:
        params = inspect.signature(get_class(str(model_cfg["_target_"]))).parameters
    except Exception:  # noqa: BLE001 - a factory function or an unknown target: no hints
        return {}
    return {k: v for k, v in hints.items() if k in params and k not in model_cfg}


# the LightningDataModules of configs' _target_, made on first access (see base.py)
__getattr__ = lightning_twins(__name__, {"TokenDataModule": TokenData,
                                         "ModAddDataModule": ModAddData,
                                         "SequenceDataModule": SequenceData})

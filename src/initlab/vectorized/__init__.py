"""Vectorized sweeps: K runs that differ only in their initial weights (init scheme and
seed) and learning rate trained at once as one stacked model (``torch.func`` ``vmap``).

``hydra/sweeper=vectorized`` groups a sweep's runs into such jobs (``sweeper``); train.py
hands a job to ``run_vectorized``; ``train_members`` trains given member configs outside
Hydra. This package imports no torch until one of those is used (the sweeper is loaded
by Hydra's plugin scan on every start).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "run_vectorized": "initlab.vectorized.run",
    "train_members": "initlab.vectorized.run",
    "Member": "initlab.vectorized.run",
    "check_supported": "initlab.vectorized.checks",
    "VectorizeError": "initlab.vectorized.checks",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'initlab.vectorized' has no attribute {name!r}")

"""Garbage collection for a short-lived command that imports a lot.

torch (with torch._dynamo, which its optimizers import), sympy, scikit-learn and
matplotlib leave hundreds of thousands of long-lived objects, and every full collection
walks them all again: the canonical 10 s sweep spent about 1 s in collections during
its imports and set-up and 1.2 s more in the last one at exit. ``setup_phase`` runs a
set-up step (imports, building data, models and figures) without collections and then
moves what it made out of all later ones (``gc.freeze``); ``freeze_heap`` does the
latter alone (at the end of a command). Objects made afterwards are collected as usual;
only garbage cycles among the frozen objects are never freed, which a command that ends
soon can afford."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def freeze_heap() -> None:
    """Leave every object alive now out of later garbage collections."""
    gc.freeze()


@contextmanager
def setup_phase() -> Iterator[None]:
    """No garbage collection inside the block (imports and set-up allocate much and free
    little); what is alive at its end is frozen (``freeze_heap``) and collection goes on
    as before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        freeze_heap()
        if enabled:
            gc.enable()


@contextmanager
def young_objects_only() -> Iterator[None]:
    """Inside the block, collections leave out every object alive at its start: drawing
    figures makes many short-lived objects that would otherwise set off full collections
    over a whole training process. Afterwards those objects are collected as before
    (unless a set-up phase had frozen objects already: they stay frozen)."""
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()

"""Switching train/eval mode on a known list of modules, cheaply.

``nn.Module.train`` walks the module tree and sets ``training`` through
``nn.Module.__setattr__`` on each module: about 25 us for the default 15-module MLP
(several times that right after a backward pass), paid twice per epoch by every
evaluation pass. With the modules collected once, the same flag is set directly; a
module that overrides ``train`` still gets its own ``train`` called.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import nn


def set_training(modules: Iterable[nn.Module], mode: bool) -> None:
    """``module.train(mode)`` for each of ``modules`` (pass all of a model's modules)."""
    for m in modules:
        if type(m).train is nn.Module.train:
            m.__dict__["training"] = mode
        else:
            m.train(mode)


def restore_training(modules: Sequence[nn.Module], modes: Sequence[bool]) -> None:
    """Put each of ``modules`` back in its saved mode (``modes[i]`` for ``modules[i]``;
    parents before children, as ``nn.Module.modules()`` lists them)."""
    if all(modes) or not any(modes):  # the usual case: one mode for all
        set_training(modules, bool(modes[0]) if modes else False)
        return
    for m, mode in zip(modules, modes, strict=True):
        set_training((m,), mode)

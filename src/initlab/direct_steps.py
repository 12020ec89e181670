"""Optimizer steps without Lightning's per-step wrappers, where that changes nothing.

In manual optimization ``manual_backward`` and ``LightningOptimizer.step`` wrap
``loss.backward()`` and ``optimizer.step()`` in strategy, precision and profiler layers
and dispatch three hooks to every callback. On a single device with plain (or bf16)
precision those layers do nothing but the dispatch, which costs about as much as a small
model's step. ``InitStudyModule`` then calls backward and the step itself and the hooks
only on the callbacks (and the module) that override them, in Lightning's order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.plugins.precision import MixedPrecision, Precision
from pytorch_lightning.profilers import PassThroughProfiler
from pytorch_lightning.strategies import SingleDeviceStrategy
from pytorch_lightning.utilities.model_helpers import is_overridden

# The hooks Lightning fires around each manual optimizer step (zero_grad fires none).
STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
# The hooks the module's lean validation pass fires (Lightning's loop fires more).
VAL_HOOKS = ("on_validation_epoch_start", "on_validation_epoch_end")


def direct_steps_supported(module: pl.LightningModule) -> bool:
    """True when Lightning's backward/step wrappers would only dispatch hooks: one
    device, no loss scaling or precision casts in backward, no profiler, one optimizer,
    and a module that keeps Lightning's ``backward``."""
    trainer = module.trainer
    plugin = trainer.precision_plugin
    plain_precision = type(plugin) is Precision or (
        type(plugin) is MixedPrecision and plugin.scaler is None  # bf16: autocast only
    )
    manual = getattr(trainer.fit_loop.epoch_loop, "manual_optimization", None)
    return (
        type(trainer.strategy) is SingleDeviceStrategy
        and plain_precision
        and isinstance(trainer.profiler, PassThroughProfiler)
        and len(trainer.optimizers) == 1
        and getattr(manual, "optim_step_progress", None) is not None
        and not is_overridden("backward", module, pl.LightningModule)
    )


def step_hooks(trainer: pl.Trainer, module: pl.LightningModule, name: str) -> list[Callable]:
    """The overriding implementations of hook ``name``: callbacks first, then the module
    (Lightning's order), each bound so that it takes the hook's own arguments. Lightning
    itself also dispatches only to overriders in effect: the base hooks do nothing."""
    hooks: list[Callable[..., Any]] = [
        partial(getattr(cb, name), trainer, module)
        for cb in trainer.callbacks
        if is_overridden(name, cb, pl.Callback)
    ]
    if is_overridden(name, module, pl.LightningModule):
        hooks.append(getattr(module, name))
    return hooks

"""Coordinate check (Yang et al. 2022, "Tensor Programs V", section 7 / figure 5): the mean
absolute value of every layer's output coordinates over the first training steps. Plotted
against the width, it stays flat under a parametrization that is stable as the width grows
(muP) and grows with the width where updates blow up (SP with Adam).

``CoordCheck`` is the Lightning callback (forward hooks on the model's Linear and
Embedding layers; ``summary_fields()`` gives summary.json's ``coord_check``);
``coord_check`` is the same measurement on plain torch for given widths, and
``coord_slopes`` the slope of log |act| against log width per layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

LAYER_TYPES = (nn.Linear, nn.Embedding)


class CoordRecorder:
    """Forward hooks that keep, per layer, ``mean |output|`` of each training forward
    (modules in train mode) for the first ``steps`` forwards; values stay on the device
    until ``values()``."""

    def __init__(self, steps: int) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"diagnostics.coord_check.steps={steps!r} must be an integer >= 1")
        self.steps = steps
        self.records: dict[str, list[torch.Tensor]] = {}
        self._handles: list[Any] = []

    def attach(self, model: nn.Module) -> None:
        for name, m in model.named_modules():
            if isinstance(m, LAYER_TYPES):
                self.records[name] = []
                self._handles.append(m.register_forward_hook(self._hook(name)))

    def _hook(self, name: str) -> Callable[..., None]:
        record = self.records[name]

        def hook(module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            if module.training and len(record) < self.steps:
                record.append(out.detach().abs().mean())
        return hook

    @property
    def done(self) -> bool:
        return all(len(v) >= self.steps for v in self.records.values())

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def values(self) -> dict[str, list[float]]:
        return {k: [float(t) for t in v] for k, v in self.records.items()}


class CoordCheck(pl.Callback):
    """Records ``mean |output|`` of every Linear / Embedding layer over the first ``steps``
    training steps; ``summary_fields()`` -> ``{"coord_check": {"width": n, "steps": [...],
    "layers": {layer: [value per step]}}}`` for summary.json."""

    def __init__(self, steps: int = 5) -> None:
        self.recorder = CoordRecorder(steps)
        self.width: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = getattr(pl_module, "model", pl_module)
        self.width = getattr(model, "width", None)
        self.recorder.attach(model)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.recorder.done:
            self.recorder.detach()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.recorder.detach()

    def summary_fields(self) -> dict[str, Any]:
        layers = self.recorder.values()
        if not any(layers.values()):
            return {}
        n = max(len(v) for v in layers.values())
        return {"coord_check": {"width": self.width, "steps": list(range(n)),
                                "layers": layers}}


@contextmanager
def _recording(model: nn.Module, steps: int) -> Iterator[CoordRecorder]:
    rec = CoordRecorder(steps)
    rec.attach(model)
    try:
        yield rec
    finally:
        rec.detach()


def coord_check(make_model: Callable[[int], nn.Module], widths: list[int],
                batches: list[tuple[torch.Tensor, torch.Tensor]],
                make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
                loss_fn: Callable[..., torch.Tensor] = nn.functional.cross_entropy,
                ) -> dict[int, dict[str, list[float]]]:
    """For each width: build ``make_model(width)`` (initialized), take one optimizer step
    per batch of ``batches`` and return ``{width: {layer: [mean |out| at each step]}}``
    (step t is the forward before the t-th update)."""
    out: dict[int, dict[str, list[float]]] = {}
    for width in widths:
        model = make_model(width)
        model.train()
        opt = make_optimizer(model)
        with _recording(model, len(batches)) as rec:
            for x, y in batches:
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
        out[width] = rec.values()
    return out


def coord_slopes(result: dict[int, dict[str, list[float]]], step: int = -1) -> dict[str, float]:
    """Per layer: the least-squares slope of ``log mean|out|`` against ``log width`` at
    ``step`` (0 = flat in width; 1 = proportional to it)."""
    widths = sorted(result)
    xs = [math.log(w) for w in widths]
    mx = sum(xs) / len(xs)
    slopes = {}
    for layer in result[widths[0]]:
        ys = [math.log(max(result[w][layer][step], 1e-30)) for w in widths]
        my = sum(ys) / len(ys)
        slopes[layer] = (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
                         / sum((x - mx) ** 2 for x in xs))
    return slopes

"""Layer-sequential unit-variance initialization (LSUV)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from initlab.initializers.registry import InitContext, register_scheme
from initlab.initializers.rules import OrthogonalRule, apply_rule

LSUV_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


class _Stop(Exception):
    """Raised from a forward hook to skip the rest of the forward pass."""


def batch_inputs(data: Any, model: nn.Module) -> Any:
    """The input tensor of a batch (a tensor, or the first item of an ``(x, y)`` batch),
    moved to the model's device."""
    if isinstance(data, Sequence) and not isinstance(data, str | torch.Tensor):
        data = data[0]
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"data must be a Tensor or an (x, y) batch, got {type(data).__name__}")
    param = next(model.parameters(), None)
    return data.to(param.device) if param is not None else data


def forward_order(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """Linear/Conv layers in the order the forward pass first calls them."""
    order: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, LSUV_TYPES) and getattr(module, "weight", None) is not None:

            def hook(mod: nn.Module, args: Any, out: Any, name: str = name) -> None:
                if id(mod) not in seen:
                    seen.add(id(mod))
                    order.append((name, mod))

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return order


def output_variance(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> float:
    """Variance of ``layer``'s output on the batch (the forward stops right after it)."""
    captured: list[float] = []

    def hook(mod: nn.Module, args: Any, out: torch.Tensor) -> None:
        captured.append(out.detach().float().var().item())
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    return captured[0] if captured else math.nan


@register_scheme("lsuv", defaults={"tol": 0.1, "max_iter": 10}, needs_data=True)
def lsuv_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Mishkin & Matas (2015), "All you need is a good init": orthonormal pre-init (Saxe et
    al.), then for each Linear/Conv layer in forward order, measure the variance ``v`` of its
    output on the data batch and set ``W <- W / sqrt(v)`` until ``|v - 1| < tol`` (0.1) or
    ``max_iter`` (10) rescalings. The forward passes run in eval mode (no dropout noise, no
    BatchNorm statistic updates); the report gives iterations and the final variance."""
    if ctx.data is None:
        raise ValueError("lsuv needs a data batch: pass data=... (a batch of inputs)")
    apply_rule(model, ctx, OrthogonalRule(1.0))
    x = batch_inputs(ctx.data, model)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        for name, layer in forward_order(model, x):
            if layer.weight.numel() == 0:  # a zero-size layer: its row says skipped
                continue
            var, iterations = output_variance(model, layer, x), 0
            while iterations < ctx.params["max_iter"] and math.isfinite(var) and var > 0:
                if abs(var - 1.0) < ctx.params["tol"]:
                    break
                with torch.no_grad():
                    layer.weight.div_(math.sqrt(var))
                iterations += 1
                var = output_variance(model, layer, x)
            row = ctx.report.find(name or type(model).__name__, "weight")
            std = layer.weight.detach().float().std().item()
            row.update(rule="lsuv", iterations=iterations, final_var=var, std=std, actual_std=std)
    finally:
        for module, training in modes.items():
            module.train(training)

"""Activation factory: config name -> ``nn.Module``.

Every model takes a zero-argument ``activation`` factory so that each layer gets
its own module instance (hooks and diagnostics need distinct modules).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "selu": nn.SELU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "softsign": nn.Softsign,
    "linear": nn.Identity,
}

# Keyword arguments each activation accepts from the config (beyond ``name``).
ACTIVATION_PARAMS: dict[str, tuple[str, ...]] = {
    "leaky_relu": ("negative_slope",),
    "elu": ("alpha",),
}


def make_activation(name: str, **params: float) -> nn.Module:
    """Build one activation module by config name, e.g. ``make_activation("leaky_relu",
    negative_slope=0.2)``."""
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation.name={name!r} is not known; allowed: {', '.join(sorted(ACTIVATIONS))}"
        )
    allowed = ACTIVATION_PARAMS.get(name, ())
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"activation {name!r} takes no parameter(s) {unknown}; "
            f"allowed: {list(allowed) or 'none'}"
        )
    return ACTIVATIONS[name](**params)


def activation_factory(name: str, **params: float) -> Callable[[], nn.Module]:
    """A zero-argument factory for ``name``; validates eagerly so bad config fails early."""
    make_activation(name, **params)
    return partial(make_activation, name, **params)


def activation_name(module: nn.Module) -> str | None:
    """Config name of an activation module instance, or None if it is not one of ours."""
    for name, cls in ACTIVATIONS.items():
        if type(module) is cls:
            return name
    return None

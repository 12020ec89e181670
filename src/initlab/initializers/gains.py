"""Activation gains.

``gain_for(activation, gain)`` turns a config gain into a number:

* a number is returned as is (it must be > 0);
* ``"auto"``: the gain ``torch.nn.init.calculate_gain`` defines for the activation
  (linear/identity/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2 / (1 + a^2)),
  selu 3/4); no activation means linear (1). Activations torch does not cover (gelu, silu,
  elu, softsign, custom modules) fall back to ``"preserve"``;
* ``"preserve"``: ``1 / sqrt(E[phi(z)^2])`` with ``z ~ N(0, 1)``. With zero-mean weights of
  variance ``gain^2 / fan_in`` and zero biases, a pre-activation second moment of 1 is then
  a fixed point: ``q' = fan_in * gain^2 / fan_in * E[phi(z)^2] = 1``. The expectation is
  computed numerically (trapezoid rule on [-12, 12], error below 1e-6) and cached per
  activation and parameters.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from initlab.models.activations import activation_name, make_activation

GAIN_WORDS = ("auto", "preserve")
ActivationLike = str | nn.Module | Mapping[str, Any] | Callable[[], nn.Module] | None

_PRESERVE_CACHE: dict[str, float] = {}


def resolve_activation(activation: ActivationLike) -> nn.Module | None:
    """An activation module from a config name, a module, a ``{name: ..., **params}``
    mapping, a module class / zero-argument factory, or None."""
    if activation is None or isinstance(activation, nn.Module):
        return activation
    if isinstance(activation, str):
        return make_activation(activation)
    if isinstance(activation, Mapping):
        params = {k: v for k, v in activation.items() if k not in ("name", "_target_")}
        return make_activation(activation["name"], **params)
    if callable(activation):
        module = activation()
        if isinstance(module, nn.Module):
            return module
    raise ValueError(
        f"activation={activation!r} is not understood; pass a config name, an nn.Module, "
        "a {name: ...} mapping or None"
    )


def torch_gain(activation: nn.Module | None) -> float | None:
    """``torch.nn.init.calculate_gain`` for the activation, or None where torch has no rule."""
    if activation is None:
        return 1.0
    name = activation_name(activation)
    if name in ("linear", "sigmoid", "tanh", "relu", "selu"):
        return nn.init.calculate_gain(name)
    if name == "leaky_relu":
        return nn.init.calculate_gain("leaky_relu", activation.negative_slope)
    return None


def preserve_gain(activation: nn.Module | None) -> float:
    """``1 / sqrt(E[phi(z)^2])``, ``z ~ N(0, 1)``, computed numerically and cached."""
    if activation is None:
        return 1.0
    key = f"{type(activation).__module__}.{type(activation).__qualname__}:{activation!r}"
    if key not in _PRESERVE_CACHE:
        phi = copy.deepcopy(activation).eval()
        z = torch.linspace(-12.0, 12.0, 48001, dtype=torch.float64)
        density = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        with torch.no_grad():
            second_moment = torch.trapezoid(phi(z.clone()).double() ** 2 * density, z).item()
        if not second_moment > 0 or not math.isfinite(second_moment):
            raise ValueError(f"gain=preserve is undefined for {activation!r}: E[phi(z)^2] = 0")
        _PRESERVE_CACHE[key] = 1.0 / math.sqrt(second_moment)
    return _PRESERVE_CACHE[key]


def he_gain(activation: nn.Module | None) -> float:
    """He et al. (2015) rectifier gain ``sqrt(2 / (1 + a^2))``, ``a`` the negative slope of
    a leaky ReLU activation and 0 for every other activation (the derivation assumes a
    rectifier, so ``he`` keeps its sqrt(2) whatever the activation)."""
    slope = 0.0
    if activation is not None and activation_name(activation) == "leaky_relu":
        slope = float(activation.negative_slope)
    return math.sqrt(2.0 / (1.0 + slope * slope))


def gain_for(activation: ActivationLike, gain: float | str = "auto") -> float:
    """A numeric gain from ``gain`` (number, ``"auto"`` or ``"preserve"``); see module doc."""
    check_gain(gain)
    if not isinstance(gain, str):
        return float(gain)
    module = resolve_activation(activation)
    if gain == "auto":
        known = torch_gain(module)
        if known is not None:
            return known
    return preserve_gain(module)


def check_gain(gain: Any, key: str = "init.gain") -> None:
    """Raise ValueError unless ``gain`` is a positive number, ``auto`` or ``preserve``."""
    if isinstance(gain, str):
        if gain not in GAIN_WORDS:
            raise ValueError(
                f"{key}={gain!r} is not allowed; allowed: a number > 0, {', '.join(GAIN_WORDS)}"
            )
        return
    if isinstance(gain, bool) or not isinstance(gain, int | float) or not 0 < gain < math.inf:
        raise ValueError(
            f"{key}={gain!r} is not allowed; allowed: a number > 0, {', '.join(GAIN_WORDS)}"
        )

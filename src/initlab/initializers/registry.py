"""Scheme registry: config name -> scheme function, its parameter defaults and needs.

A scheme function takes ``(model, ctx)`` and initializes the model in place, appending rows
to ``ctx.report``. Most schemes build a per-tensor rule and call
``initlab.initializers.rules.apply_rule``; whole-model schemes (e.g. Fixup, which rescales
residual branches) can do anything, as long as all randomness comes from ``ctx.generator``.
New schemes plug in with the decorator, without touching the dispatch::

    @register_scheme("my_scheme", defaults={"std": 0.02})
    def my_scheme(model, ctx):
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab.initializers.report import InitReport

#: Parameters every scheme accepts (bias handling and recurrent weights).
COMMON_DEFAULTS: dict[str, Any] = {"bias": "zeros", "bias_value": 0.0, "recurrent": None}


@dataclass
class InitContext:
    """What a scheme function gets besides the model."""

    params: dict[str, Any]
    generator: torch.Generator
    activation: nn.Module | None = None
    data: Any = None
    report: InitReport = field(default_factory=InitReport)


SchemeFn = Callable[[nn.Module, InitContext], None]


@dataclass(frozen=True)
class SchemeSpec:
    name: str
    fn: SchemeFn
    defaults: dict[str, Any]
    needs_data: bool = False

    @property
    def summary(self) -> str:
        doc = (self.fn.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.name


SCHEMES: dict[str, SchemeSpec] = {}


def register_scheme(
    name: str, *, defaults: dict[str, Any] | None = None, needs_data: bool = False
) -> Callable[[SchemeFn], SchemeFn]:
    """Register ``fn`` under the config name ``name``. ``defaults`` lists every parameter
    the scheme takes (with its paper default); the common ``bias``, ``bias_value`` and
    ``recurrent`` keys are added unless given."""

    def decorator(fn: SchemeFn) -> SchemeFn:
        if name in SCHEMES and SCHEMES[name].fn is not fn:
            raise ValueError(f"init scheme {name!r} is already registered")
        SCHEMES[name] = SchemeSpec(name, fn, {**COMMON_DEFAULTS, **(defaults or {})}, needs_data)
        return fn

    return decorator


def get_scheme(name: str) -> SchemeSpec:
    if name not in SCHEMES:
        raise ValueError(
            f"init.scheme={name!r} is not a known scheme; allowed: {', '.join(sorted(SCHEMES))}"
        )
    return SCHEMES[name]

"""The public entry points: ``initialize`` (Python API) and ``Initializer`` (Hydra target)."""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import nn

from initlab.initializers.gains import ActivationLike, resolve_activation
from initlab.initializers.imports import import_schemes
from initlab.initializers.registry import COMMON_DEFAULTS, InitContext, get_scheme
from initlab.initializers.report import InitReport
from initlab.initializers.validation import validate_params


def make_generator(seed: int | None) -> tuple[torch.Generator, int]:
    """A private CPU generator and the seed it uses. ``seed=None`` seeds it
    non-deterministically (``torch.Generator().seed()``, from the OS); the seed is returned
    so the run can be reproduced. The global torch RNG is never read or advanced."""
    generator = torch.Generator()
    if seed is None:
        return generator, generator.seed()
    try:
        seed = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed={seed!r} is not allowed; allowed: an integer or None") from None
    generator.manual_seed(seed)
    return generator, seed


def initialize(
    model: nn.Module,
    scheme: str,
    activation: ActivationLike = None,
    seed: int | None = None,
    data: Any = None,
    **params: Any,
) -> InitReport:
    """Initialize every parameter of ``model`` in place with the scheme named ``scheme``.

    ``activation``: the nonlinearity the layers feed (config name, ``nn.Module`` such as
    ``nn.LeakyReLU(0.2)``, or None = linear); it sets ``gain: auto`` / ``preserve``.
    ``seed``: same seed, same weights; randomness comes only from a private generator.
    ``data``: an input batch for data-dependent schemes (``lsuv``).
    ``params``: the scheme's parameters (see ``SCHEMES[scheme].defaults``).
    Returns an ``InitReport`` with one row per parameter tensor.
    """
    spec = get_scheme(scheme)
    merged = validate_params(scheme, params, spec.defaults)
    module = resolve_activation(activation)
    if spec.needs_data and data is None:
        raise ValueError(f"{scheme} needs a data batch: pass data=... (a batch of inputs)")
    generator, seed = make_generator(seed)
    report = InitReport(scheme, seed, merged)
    spec.fn(model, InitContext(merged, generator, module, data, report))
    return report


class Initializer:
    """Hydra target: ``Initializer(scheme, **params)`` validates at construction and is then
    called as ``init(model, activation=..., data=..., seed=...)``. ``imports``: modules
    that register user schemes (``init.imports=[mypkg.schemes]``), imported first."""

    def __init__(self, scheme: str, imports: list[str] | str | None = None, **params: Any
                 ) -> None:
        import_schemes(imports)
        spec = get_scheme(scheme)
        self.scheme = scheme
        self.params: dict[str, Any] = validate_params(scheme, dict(params), spec.defaults)
        self.needs_data: bool = spec.needs_data

    def __call__(
        self,
        model: nn.Module,
        *,
        activation: ActivationLike = None,
        data: Any = None,
        seed: int | None = None,
    ) -> InitReport:
        return initialize(
            model, self.scheme, activation=activation, seed=seed, data=data, **self.params
        )

    def describe(self) -> str:
        """e.g. ``he(gain=auto, distribution=normal, mode=fan_in)``; common keys are shown
        only when they differ from their defaults."""
        shown = {
            k: v
            for k, v in self.params.items()
            if k not in COMMON_DEFAULTS or get_scheme(self.scheme).defaults[k] != v
        }
        return f"{self.scheme}({', '.join(f'{k}={v}' for k, v in shown.items())})"

    def __repr__(self) -> str:
        return f"Initializer(scheme={self.scheme!r}, params={self.params!r})"

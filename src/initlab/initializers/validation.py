"""Validation of scheme parameters: a bad value raises ``ValueError`` naming the config key
(``init.<key>``), the bad value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from initlab.initializers.gains import check_gain
from initlab.initializers.tensor import DISTRIBUTIONS, MODES

BIAS_OPTIONS = ("zeros", "constant", "scheme")
RECURRENT_OPTIONS = (None, "same", "orthogonal", "identity")

Check = Callable[[str, Any], None]


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{key}={value!r} is not allowed; allowed: {allowed}")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def choice(*allowed: Any) -> Check:
    def check(key: str, value: Any) -> None:
        if value not in allowed:
            _fail(key, value, ", ".join("null" if a is None else str(a) for a in allowed))

    return check


def number(low: float = -math.inf, *, strict: bool = False, optional: bool = False) -> Check:
    def check(key: str, value: Any) -> None:
        if value is None and optional:
            return
        ok = is_number(value) and (value > low if strict else value >= low)
        if not ok:
            rule = (
                "finite number" if low == -math.inf else f"number {'>' if strict else '>='} {low}"
            )
            _fail(key, value, rule + (" or null" if optional else ""))

    return check


def integer(low: int, *, optional: bool = False) -> Check:
    def check(key: str, value: Any) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            _fail(key, value, f"integer >= {low}" + (" or null" if optional else ""))

    return check


def fraction(key: str, value: Any) -> None:
    if value is not None and not (is_number(value) and 0.0 <= value < 1.0):
        _fail(key, value, "null or a number with 0 <= sparsity < 1")


#: Checks by parameter name; schemes registered later may add their own keys here.
PARAM_CHECKS: dict[str, Check] = {
    "distribution": choice(*DISTRIBUTIONS),
    "mode": choice(*MODES),
    "gain": lambda key, value: check_gain(value, key),
    "std": number(0.0),
    "scale": number(0.0, strict=True),
    "value": number(),
    "bias": choice(*BIAS_OPTIONS),
    "bias_value": number(),
    "recurrent": choice(*RECURRENT_OPTIONS),
    "sparsity": fraction,
    "num_nonzero": integer(1),
    "tol": number(0.0, strict=True),
    "max_iter": integer(0),
}


def validate_params(
    scheme: str, params: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """``defaults`` updated with ``params`` after checking every key and value."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"init.{unknown[0]} is not a parameter of init scheme {scheme!r}; "
            f"allowed: {', '.join(sorted(defaults))}"
        )
    merged = {**defaults, **params}
    for key, value in merged.items():
        check = PARAM_CHECKS.get(key)
        if check is not None:
            check(f"init.{key}", value)
    return merged

"""The figure formats a sweep's plots may be written in. Apart from ``plots`` (which
imports matplotlib and pandas, about 2.5 s) so that the sweep callback can check the
setting when Hydra starts, single runs included, without paying for them."""

from __future__ import annotations

from collections.abc import Sequence

FORMATS = ("png", "pdf", "svg")


def check_formats(formats: Sequence[str] | None) -> tuple[str, ...]:
    """The figure formats asked for, PNG always first; ValueError naming the allowed ones."""
    asked = [str(f).lower().lstrip(".") for f in (formats or ["png"])]
    bad = [f for f in asked if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown figure format(s) {', '.join(map(repr, bad))}: "
                         f"choose from {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(["png", *asked]))

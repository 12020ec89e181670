"""User init schemes: modules named in ``init.imports`` are imported before the scheme is
looked up, so their ``@register_scheme`` decorators have run."""

from __future__ import annotations

import importlib
from collections.abc import Iterable


def import_schemes(modules: str | Iterable[str] | None) -> None:
    """Import each module (``mypkg.schemes``); raises ValueError naming ``init.imports``
    and the module when one cannot be imported."""
    if not modules:
        return
    for name in [modules] if isinstance(modules, str) else modules:
        try:
            importlib.import_module(str(name))
        except ImportError as exc:
            raise ValueError(f"init.imports: cannot import {name!r} ({exc}); allowed: "
                             "importable module names (on PYTHONPATH or installed)") from exc

"""``InitReport``: what an initialization did, one row per parameter tensor."""

from __future__ import annotations

import math
from typing import Any

COLUMNS = (
    "layer",
    "type",
    "param",
    "shape",
    "rule",
    "fan_in",
    "fan_out",
    "gain",
    "std",
    "bound",
    "actual_std",
    "iterations",
    "final_var",
)


def _plain(value: Any) -> Any:
    """A JSON-friendly version of a value (python scalars; NaN/inf become None)."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


class InitReport:
    """Rows (dicts with the keys in ``COLUMNS``) plus the scheme, seed and parameters."""

    def __init__(
        self, scheme: str = "", seed: int | None = None, params: dict[str, Any] | None = None
    ) -> None:
        self.scheme = scheme
        self.seed = seed
        self.params = dict(params or {})
        self.rows: list[dict[str, Any]] = []

    def add(self, **row: Any) -> dict[str, Any]:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown report columns {sorted(unknown)}")
        full = {key: _plain(row.get(key)) for key in COLUMNS}
        self.rows.append(full)
        return full

    def find(self, layer: str, param: str = "weight") -> dict[str, Any]:
        """The row of ``layer.param``."""
        for row in self.rows:
            if row["layer"] == layer and row["param"] == param:
                return row
        raise KeyError(f"no report row for {layer}.{param}")

    def to_records(self) -> list[dict[str, Any]]:
        """Plain, JSON-serialisable dicts (a copy)."""
        return [dict(row) for row in self.rows]

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __repr__(self) -> str:
        return f"InitReport(scheme={self.scheme!r}, seed={self.seed}, rows={len(self.rows)})"

    def __str__(self) -> str:
        columns = [c for c in COLUMNS if any(row[c] is not None for row in self.rows)]

        def cell(value: Any) -> str:
            if value is None:
                return ""
            if isinstance(value, float):
                return f"{value:.4g}"
            return str(value)

        table = [columns] + [[cell(row[c]) for c in columns] for row in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
        lines = [f"init scheme={self.scheme} seed={self.seed}"]
        for n, line in enumerate(table):
            lines.append(
                "  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip()
            )
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

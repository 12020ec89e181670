"""Diagnostics: signal propagation at init (probe, mean-field theory) and during training.

``probe`` is imported eagerly; the rest on first use so that importing the package does
not pull in scipy (meanfield), Lightning (callbacks) or matplotlib (plots).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from initlab.diagnostics.probe import input_output_jacobian, probe, summarize_probe

_LAZY = {
    "meanfield": "initlab.diagnostics.meanfield",
    "meanfield_from_model": "initlab.diagnostics.meanfield",
    "critical_sigma_w2": "initlab.diagnostics.meanfield",
    "TrainingDiagnostics": "initlab.diagnostics.callbacks",
    "plot_signal_propagation": "initlab.diagnostics.plots",
    "plot_activation_histograms": "initlab.diagnostics.plots",
}
__all__ = ["input_output_jacobian", "probe", "summarize_probe", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'initlab.diagnostics' has no attribute {name!r}")

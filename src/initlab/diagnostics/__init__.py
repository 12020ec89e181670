"""Diagnostics: signal propagation at init (probe, mean-field theory) and during training.

Light imports only; ``initlab.diagnostics.callbacks`` (Lightning) and
``initlab.diagnostics.plots`` (matplotlib) are imported on use.
"""

from initlab.diagnostics.probe import input_output_jacobian, probe, summarize_probe

__all__ = ["input_output_jacobian", "probe", "summarize_probe"]

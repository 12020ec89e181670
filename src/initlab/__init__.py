"""initlab: study neural-network weight initialization.

Public entry points are imported lazily so that ``import initlab`` stays cheap
(no Lightning / Hydra import) for users of the initializer library alone.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["InitCallback", "InitProbe", "TrainingDiagnostics", "initialize", "probe",
           "register_scheme", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "InitCallback":
        from initlab.init_callback import InitCallback

        return InitCallback
    if name == "InitProbe":
        from initlab.callbacks import InitProbe

        return InitProbe
    if name == "TrainingDiagnostics":
        from initlab.diagnostics.callbacks import TrainingDiagnostics

        return TrainingDiagnostics
    if name == "register_scheme":
        from initlab.initializers import register_scheme

        return register_scheme
    if name == "initialize":
        from initlab.initializers import initialize

        return initialize
    if name == "probe":
        from initlab.diagnostics import probe

        return probe
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")

"""Hydra plugin entry for ``hydra/sweeper=vectorized`` (see docs/vectorized.md).

Hydra 1.3 instantiates a sweeper only from a class it discovered in the ``hydra_plugins``
namespace package, so this thin subclass is what ``_target_`` names; the implementation
is ``initlab.vectorized.sweeper``. Keep this module cheap: Hydra imports every module of
the namespace on each start.
"""

from initlab.vectorized import sweeper as _impl


class VectorizedSweeper(_impl.VectorizedSweeper):
    """Groups runs that differ only in init/seed into one vectorized job."""

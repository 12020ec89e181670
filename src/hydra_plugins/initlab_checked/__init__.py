"""Hydra plugin entry for ``hydra/sweeper=checked``, initlab's default sweeper (see
``initlab.sweeper``). Hydra 1.3 instantiates a sweeper only from a class its plugin scan
found in the ``hydra_plugins`` namespace; keep this module cheap (Hydra imports it on
each start)."""

from initlab import sweeper as _impl


class CheckedSweeper(_impl.CheckedSweeper):
    """Hydra's basic sweep, every job checked before the first trains."""

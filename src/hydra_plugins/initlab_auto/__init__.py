"""Hydra plugin entry for ``hydra/sweeper=auto``, initlab's default sweeper (see
``initlab.sweeper.AutoSweeper``). Hydra 1.3 instantiates a sweeper only from a class its
plugin scan found in the ``hydra_plugins`` namespace; keep this module cheap (Hydra
imports it on each start)."""

from initlab import sweeper as _impl


class AutoSweeper(_impl.AutoSweeper):
    """The checked sweep, vectorized when every job can be."""

"""The batch a data-dependent initializer (e.g. LSUV) sees before training: shared by
the Lightning module and the vectorized engine (which never imports Lightning)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

INIT_BATCH_SIZE = 256  # examples a data-dependent init (e.g. LSUV) sees


def init_data(initializer: Callable[..., Any], model: nn.Module, datamodule: Any,
              batch_size: int = INIT_BATCH_SIZE, seed: int | None = None) -> Tensor | None:
    """The inputs a data-dependent ``initializer`` sees before training (None for the
    others): ``batch_size`` examples of ``datamodule.sample_batch``, drawn with ``seed``
    (by default the data module's own), on the model's device."""
    if not getattr(initializer, "needs_data", False):
        return None
    # the seed keyword only where one is asked for: other data modules may not take it
    drawn = (datamodule.sample_batch(batch_size) if seed is None
             else datamodule.sample_batch(batch_size, seed=seed))
    return drawn[0].to(next(model.parameters()).device)

"""Metrics shared by the ordinary and the vectorized training loops."""

from __future__ import annotations

from torch import Tensor


def predicted_class(out: Tensor, dim: int = -1) -> Tensor:
    """The index of the largest logit along ``dim``, the first one on ties and a NaN's
    where there is one: ``out.argmax(dim)``. ``max(dim).indices`` gives the same indices
    and is two to three times faster on CPU for the few classes of an init study."""
    return out.max(dim).indices

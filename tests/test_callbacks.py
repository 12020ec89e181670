"""The divergence rule both training loops apply to each step's loss."""

from __future__ import annotations

import pytest

from initlab.callbacks import is_divergent


@pytest.mark.parametrize(("loss", "max_loss", "stops"), [
    (float("nan"), None, True), (float("inf"), None, True), (float("-inf"), 1e6, True),
    (2e6, 1e6, True), (1e6, 1e6, False), (1e30, None, False), (0.3, 1e6, False),
])
def test_nan_inf_and_losses_above_the_ceiling_stop_a_run(loss: float, max_loss: float | None,
                                                         stops: bool) -> None:
    assert is_divergent(loss, max_loss) is stops

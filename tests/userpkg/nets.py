"""User models: one that takes initlab's arguments, one that takes none."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


class TwoLayer(nn.Module):
    """Flatten -> Linear(hidden) -> activation -> Linear(num_outputs)."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int,
                 activation: Callable[[], nn.Module], hidden: int = 16) -> None:
        super().__init__()
        n_in = 1
        for d in input_shape:
            n_in *= d
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), activation(),
                                 nn.Linear(hidden, num_outputs))

    def forward(self, x):
        return self.net(x)


def fixed_digits_net() -> nn.Module:
    """A factory that takes no arguments (it knows digits' 64 inputs and 10 classes)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.Tanh(), nn.Linear(12, 10))

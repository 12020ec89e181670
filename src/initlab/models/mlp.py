"""Fully connected network: (Linear -> [norm] -> activation) x depth -> Linear."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor, nn

NORMS = ("none", "batch", "layer")


def _check_positive(key: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"model.{key}={value!r} must be a positive integer")


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"model.norm={norm!r} is not known; allowed: {', '.join(NORMS)}")


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units; inputs of any shape are flattened.

    Blocks are ``blocks.<i>.linear / .norm / .act`` so diagnostics can name layers.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        activation: Callable[[], nn.Module],
        depth: int = 3,
        width: int = 128,
        bias: bool = True,
        norm: str = "none",
    ) -> None:
        super().__init__()
        _check_positive("depth", depth)
        _check_positive("width", width)
        _check_norm(norm)
        self.width = width  # read by width parametrizations (initlab.parametrization)
        self.flatten = nn.Flatten()
        blocks = []
        fan_in = math.prod(input_shape)
        for _ in range(depth):
            block = nn.Sequential()
            block.add_module("linear", nn.Linear(fan_in, width, bias=bias))
            if norm == "batch":
                block.add_module("norm", nn.BatchNorm1d(width))
            elif norm == "layer":
                block.add_module("norm", nn.LayerNorm(width))
            block.add_module("act", activation())
            blocks.append(block)
            fan_in = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(fan_in, num_outputs, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.flatten(x)))

"""A small convolutional net for image inputs (works on 1x8x8 digits too)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from initlab.models.mlp import _check_norm, _check_positive

POOLS = ("max", "avg", "none")


class CNN(nn.Module):
    """(Conv -> [norm] -> activation -> [pool]) per entry of ``channels``, then global
    average pooling and a Linear head. Pooling stops once the map is 1x1, so deep
    channel lists still fit small images."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        activation: Callable[[], nn.Module],
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        pool: str = "max",
        bias: bool = True,
        norm: str = "none",
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(
                f"model=cnn needs image inputs (C, H, W); the data set gives {tuple(input_shape)}"
            )
        if not channels:
            raise ValueError("model.channels must list at least one layer")
        for c in channels:
            _check_positive("channels", c)
        _check_positive("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"model.kernel_size={kernel_size} must be odd ('same' padding)")
        if pool not in POOLS:
            raise ValueError(f"model.pool={pool!r} is not known; allowed: {', '.join(POOLS)}")
        _check_norm(norm)
        in_ch, size = input_shape[0], min(input_shape[1:])
        blocks = []
        for out_ch in channels:
            block = nn.Sequential()
            block.add_module(
                "conv", nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias)
            )
            if norm == "batch":
                block.add_module("norm", nn.BatchNorm2d(out_ch))
            elif norm == "layer":
                block.add_module("norm", nn.GroupNorm(1, out_ch))
            block.add_module("act", activation())
            if pool != "none" and size >= 2:
                block.add_module("pool", nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
                size //= 2
            blocks.append(block)
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(in_ch, num_outputs, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.gap(self.blocks(x)))

"""CIFAR-style ResNet (He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image
Recognition", section 4.2), with the hooks architecture-aware initializers need.

Layout: a 3x3 conv stem with ``width`` channels, three stages of ``n`` basic blocks with
``width``, ``2 * width`` and ``4 * width`` channels (stride 2 at the first block of stages
2 and 3), global average pooling and a Linear head: ``6n + 1`` conv layers + 1 linear,
``depth = 6n + 2`` (8, 14, 20, 32, 44, 56, 110, ...).

Shortcuts: option A by default, as the paper uses for CIFAR: identity, and where the
shape changes, subsample by 2 and zero-pad the new channels -- parameter-free, so the
weight-layer count is exactly ``depth``. ``shortcut="B"`` uses a 1x1 strided conv (+ norm)
projection where the shape changes instead (``shortcut`` attribute of the block).

Each :class:`BasicBlock` exposes its residual branch (``conv1 -> norm1 -> act -> conv2 ->
norm2``) and the Fixup scalars of Zhang, Dauphin & Ma (2019), "Fixup Initialization",
figure 1 / section 3: ``bias1a, bias1b, bias2a, bias2b`` (init 0) and ``scale`` (init 1),
used as ``x + bias1a -> conv1 -> norm1 -> + bias1b -> act -> + bias2a -> conv2 -> norm2 ->
* scale + bias2b``. At their initial values they change nothing, so they are always present;
``norm="none"`` with a Fixup initializer gives the normalization-free network of the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from initlab.models.mlp import _check_positive

NORMS = ("batch", "none")
SHORTCUTS = ("A", "B")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.Identity()


class ShortcutA(nn.Module):
    """Option A: subsample by ``stride`` and zero-pad the extra channels (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))
        return x


class BasicBlock(nn.Module):
    """Two 3x3 convs on the residual branch, added to the (possibly projected) input.

    ``downsample`` is the shortcut module when the shape changes (else ``None``: identity);
    as in the Fixup reference block it sees ``x + bias1a``.
    """

    expansion = 1
    # Fixup's scalars at the values where they change nothing: every init scheme sets
    # them so (initlab.initializers.layers.classify); fixup sets them the same way
    NEUTRAL_PARAMS = {"bias1a": 0.0, "bias1b": 0.0, "bias2a": 0.0, "bias2b": 0.0, "scale": 1.0}

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        activation: Callable[[], nn.Module],
        norm: str = "batch",
        shortcut: str = "A",
    ) -> None:
        super().__init__()
        self.bias1a = nn.Parameter(torch.zeros(1))
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.norm1 = _norm(norm, out_channels)
        self.bias1b = nn.Parameter(torch.zeros(1))
        self.act1 = activation()
        self.bias2a = nn.Parameter(torch.zeros(1))
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.norm2 = _norm(norm, out_channels)
        self.scale = nn.Parameter(torch.ones(1))
        self.bias2b = nn.Parameter(torch.zeros(1))
        self.act2 = activation()
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            if shortcut == "A":
                self.downsample = ShortcutA(in_channels, out_channels, stride)
            else:
                self.downsample = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    _norm(norm, out_channels),
                )

    @property
    def branch_convs(self) -> list[nn.Conv2d]:
        """The convs of the residual branch, in order (``m = 2`` in the Fixup formula)."""
        return [self.conv1, self.conv2]

    def forward(self, x: Tensor) -> Tensor:
        out = self.norm1(self.conv1(x + self.bias1a))
        out = self.act1(out + self.bias1b)
        out = self.norm2(self.conv2(out + self.bias2a))
        out = out * self.scale + self.bias2b
        identity = x if self.downsample is None else self.downsample(x + self.bias1a)
        return self.act2(out + identity)


class ResNet(nn.Module):
    """CIFAR ResNet of ``depth = 6n + 2`` weight layers; inputs ``(C, H, W)`` of any size
    (works on 1x8x8 digits: the maps are 8x8, 4x4, 2x2 in the three stages)."""

    is_residual = True
    num_branch_layers = 2  # m in Fixup's L^(-1 / (2m - 2)) branch rescaling

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        activation: Callable[[], nn.Module],
        depth: int = 8,
        width: int = 16,
        norm: str = "batch",
        shortcut: str = "A",
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(
                f"model=resnet needs image inputs (C, H, W); the data set gives "
                f"{tuple(input_shape)}"
            )
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"model.depth={depth!r} must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...)"
            )
        _check_positive("width", width)
        if norm not in NORMS:
            raise ValueError(f"model.norm={norm!r} is not known; allowed: {', '.join(NORMS)}")
        if shortcut not in SHORTCUTS:
            raise ValueError(
                f"model.shortcut={shortcut!r} is not known; allowed: {', '.join(SHORTCUTS)}"
            )
        self.depth, self.width, self.norm, self.shortcut = depth, width, norm, shortcut
        n = (depth - 2) // 6
        self.stem = nn.Sequential()
        self.stem.add_module("conv", nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False))
        self.stem.add_module("norm", _norm(norm, width))
        self.stem.add_module("act", activation())
        stages = []
        in_ch = width
        for i, out_ch in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_ch, out_ch, stride, activation, norm, shortcut))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(in_ch, num_outputs)

    def residual_blocks(self) -> list[BasicBlock]:
        """All residual blocks in forward order (``L`` in the Fixup formula is their count)."""
        return [m for m in self.modules() if isinstance(m, BasicBlock)]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.gap(self.stages(self.stem(x))))

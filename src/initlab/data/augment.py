"""Batched data augmentation on tensors (no per-sample Python loop).

These functions follow the ``TensorBatcher`` transform signature ``(x, generator) -> x``:
the random draws come from the batcher's CPU generator, so augmentation is reproducible
for a given seed and epoch, and the arithmetic stays on the device of ``x``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop_flip(
    x: Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True
) -> Tensor:
    """Random ``H x W`` crop of the zero-padded images and a random horizontal flip.

    The standard CIFAR augmentation of He et al. (2016), section 4.2: pad 4 pixels on each
    side, crop back to the original size at a uniformly random offset, and flip left-right
    with probability 1/2. ``x`` is ``(N, C, H, W)``. Padding is with zeros; applied after
    standardization (as in :class:`~initlab.data.cifar.CIFAR10Data`), zero is the
    per-channel mean pixel.

    All crops and flips are one gather: per-sample row and column index maps into the
    padded batch, the column map reversed for flipped samples.
    """
    if x.dim() != 4:
        raise ValueError(f"random_crop_flip expects (N, C, H, W) images, got {tuple(x.shape)}")
    if pad < 0:
        raise ValueError(f"pad={pad} must be >= 0")
    n, c, h, w = x.shape
    if n == 0 or (pad == 0 and not flip):
        return x
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flipped = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    dev = x.device
    dy, dx, flipped = dy.to(dev), dx.to(dev), flipped.to(dev)
    padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = dy[:, None] + ar_h[None, :]  # (N, H)
    cols_fwd = ar_w[None, :].expand(n, w)
    cols = torch.where(flipped[:, None], (w - 1) - cols_fwd, cols_fwd) + dx[:, None]  # (N, W)
    return padded[
        torch.arange(n, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]

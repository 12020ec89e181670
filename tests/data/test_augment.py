"""random_crop_flip: every output is a crop (maybe flipped) of the padded input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from initlab.data.augment import random_crop_flip


def candidates(img: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """All crops of the zero-padded image and their mirror images (reference, by loop)."""
    _, h, w = img.shape
    padded = F.pad(img, (pad, pad, pad, pad))
    out = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            out += [crop, crop.flip(-1)]
    return out


def test_each_output_is_a_padded_crop_or_its_mirror() -> None:
    x = torch.randn(16, 3, 6, 5)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape and out.dtype == x.dtype
    for i in range(len(x)):
        assert any(torch.equal(out[i], c) for c in candidates(x[i], 2))


def test_pad_zero_is_identity_or_flip_and_flips_about_half() -> None:
    x = torch.randn(400, 1, 4, 4)
    out = random_crop_flip(x, torch.Generator().manual_seed(1), pad=0)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 150 < int(mirrored.sum()) < 250


def test_offsets_cover_the_range() -> None:
    """An image with one bright pixel: its position after cropping spans all 9 shifts."""
    x = torch.zeros(500, 1, 8, 8)
    x[:, 0, 4, 4] = 1.0
    out = random_crop_flip(x, torch.Generator().manual_seed(2), pad=4, flip=False)
    rows = out[:, 0].sum(-1).argmax(-1)
    kept = out.flatten(1).sum(1) > 0  # shifted off the edge otherwise
    assert set(rows[kept].tolist()) == set(range(8))


def test_reproducible_with_the_generator() -> None:
    x = torch.randn(8, 3, 32, 32)
    a = random_crop_flip(x, torch.Generator().manual_seed(5))
    b = random_crop_flip(x, torch.Generator().manual_seed(5))
    c = random_crop_flip(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rejects_non_image_batches() -> None:
    with pytest.raises(ValueError, match="N, C, H, W"):
        random_crop_flip(torch.randn(4, 10), torch.Generator())


def test_augmentation_draws_are_not_a_later_epochs_shuffle() -> None:
    # the crops of epoch e came from the generator seed of epoch e + 1's shuffle
    from initlab.data.batcher import TensorBatcher

    draws = []

    def record(xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        draws.append(torch.rand(8, generator=g))
        return xb

    x, y = torch.zeros(16, 1, 4, 4), torch.zeros(16, dtype=torch.long)
    batcher = TensorBatcher(x, y, 16, shuffle=True, seed=3, transform=record)
    for _ in range(3):
        list(batcher.batches())
    for epoch, got in enumerate(draws):
        for shuffle_epoch in range(5):
            g = torch.Generator().manual_seed(3 * 100_003 + shuffle_epoch)
            assert not torch.equal(got, torch.rand(8, generator=g)), (epoch, shuffle_epoch)
    assert not torch.equal(draws[0], draws[1])  # a new stream each epoch

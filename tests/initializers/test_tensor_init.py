"""Tensor-level functions: orthogonality, delta-orthogonal norm preservation, identity/Dirac
reproduce their input, generator handling."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab.initializers import (
    delta_orthogonal_,
    he_,
    identity_,
    initialize,
    lecun_,
    orthogonal_,
    sparse_,
    truncated_normal_,
    variance_scaling_,
    xavier_,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "shape",
    [(64, 32), (32, 64), (48, 48), (16, 8, 3, 3), (64, 4, 3, 3), (6, 5, 4)],
    ids=["tall", "wide", "square", "conv-wide", "conv-tall", "conv1d"],
)
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal(shape, gain):
    w = orthogonal_(torch.empty(shape), gain, gen()).reshape(shape[0], -1).double()
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    assert torch.allclose(
        gram, gain**2 * torch.eye(min(rows, cols), dtype=torch.float64), atol=1e-5
    )


def test_orthogonal_is_not_biased_to_positive_diagonal():
    """The sign correction makes Q Haar-distributed: diagonal entries are symmetric about 0."""
    diagonals = torch.stack(
        [orthogonal_(torch.empty(4, 4), 1.0, gen(s)).diag() for s in range(400)]
    )
    assert diagonals.mean().abs().item() < 0.05


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_delta_orthogonal_conv_preserves_norm_at_every_position(padding_mode):
    conv = nn.Conv2d(8, 16, 3, padding=1, padding_mode=padding_mode, bias=False)
    initialize(conv, "delta_orthogonal", seed=0)
    x = torch.randn(4, 8, 10, 10, generator=gen(1))
    with torch.no_grad():
        y = conv(x)
    assert torch.allclose(y.norm(dim=1), x.norm(dim=1), rtol=1e-5, atol=1e-5)
    centre = conv.weight[:, :, 1, 1].double()
    assert torch.allclose(centre.T @ centre, torch.eye(8, dtype=torch.float64), atol=1e-5)
    assert conv.weight.abs().sum().item() == pytest.approx(centre.abs().sum().item(), rel=1e-6)


def test_delta_orthogonal_transposed_and_grouped():
    conv_t = nn.ConvTranspose2d(8, 16, 3, padding=1, bias=False)
    grouped = nn.Conv1d(8, 16, 5, padding=2, groups=4, bias=False)
    initialize(nn.ModuleList([conv_t, grouped]), "delta_orthogonal", seed=0, gain=1.0)
    x2, x1 = torch.randn(2, 8, 7, 7, generator=gen(2)), torch.randn(2, 8, 9, generator=gen(3))
    with torch.no_grad():
        assert torch.allclose(conv_t(x2).norm(dim=1), x2.norm(dim=1), rtol=1e-5, atol=1e-5)
        y1 = grouped(x1)
    for g in range(4):  # each group maps its 2 channels norm-preservingly to its 4 channels
        assert torch.allclose(
            y1[:, 4 * g : 4 * g + 4].norm(dim=1), x1[:, 2 * g : 2 * g + 2].norm(dim=1), atol=1e-5
        )


@pytest.mark.parametrize("layer", [nn.Conv2d(8, 32, 3), nn.Conv1d(16, 16, 5),
                                   nn.ConvTranspose2d(8, 32, 3), nn.Conv2d(8, 16, 3, groups=2)])
def test_delta_orthogonal_reports_the_std_it_draws(layer):
    # the report's std is the weights' RMS: gain * sqrt(n_in / numel), whatever out / in
    report = initialize(layer, "delta_orthogonal", seed=0, gain=1.3)
    row = report.find(type(layer).__name__, "weight")
    rms = layer.weight.double().pow(2).mean().sqrt().item()
    assert row["std"] == pytest.approx(rms, rel=1e-6)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's perf note
@pytest.mark.parametrize("conv,tap", [
    (nn.Conv2d(4, 8, 4, padding="same", bias=False), (1, 1)),
    (nn.Conv1d(3, 5, 2, padding="same", bias=False), (0,)),
    (nn.Conv3d(2, 4, (2, 3, 4), padding="same", bias=False), (0, 1, 1)),
])
def test_delta_orthogonal_even_kernel_same_padding_has_no_spatial_shift(conv, tap):
    # Xiao et al. (2018): y = gain * H x at every position. With an even kernel the tap is
    # (k - 1) // 2, where padding='same' aligns it with the output pixel; k // 2 (dirac_'s
    # tap) would give y[i] = H x[i + 1]
    report = initialize(conv, "delta_orthogonal", seed=0, gain=1.3)
    assert report.find(type(conv).__name__, "weight")["rule"] == "delta_orthogonal"
    h = conv.weight[(slice(None), slice(None), *tap)]
    assert conv.weight.abs().sum().item() == pytest.approx(h.abs().sum().item(), rel=1e-6)
    gram = h.double().T @ h.double()
    assert torch.allclose(gram, 1.3**2 * torch.eye(h.shape[1], dtype=torch.float64), atol=1e-5)
    x = torch.randn(2, conv.in_channels, *([7] * len(tap)), generator=gen(4))
    with torch.no_grad():
        y = conv(x)
    assert y.shape[2:] == x.shape[2:]
    torch.testing.assert_close(y, torch.einsum("oi,bi...->bo...", h, x), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's perf note
@pytest.mark.parametrize("conv", [nn.Conv2d(4, 4, 4, padding="same", bias=False),
                                  nn.Conv1d(3, 3, 2, padding="same", bias=False)])
def test_identity_even_kernel_same_padding_reproduces_input(conv):
    initialize(conv, "identity")
    x = torch.randn(2, conv.in_channels, *([6] * (conv.weight.dim() - 2)), generator=gen())
    with torch.no_grad():
        torch.testing.assert_close(conv(x), x, rtol=1e-6, atol=1e-6)


def test_delta_orthogonal_needs_out_at_least_in():
    with pytest.raises(ValueError, match="out_channels=8 < in_channels=16"):
        initialize(nn.Conv2d(16, 8, 3), "delta_orthogonal", seed=0)
    with pytest.raises(ValueError, match="out_channels"):
        delta_orthogonal_(torch.empty(8, 16, 3, 3))
    # Linear layers (e.g. a classifier head) get plain orthogonal, any shape.
    initialize(nn.Linear(16, 8), "delta_orthogonal", seed=0)


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv1d(6, 6, 3, padding=1),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.Conv3d(4, 4, 3, padding=1),
        nn.Conv2d(8, 8, 5, padding=2, groups=4),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.ConvTranspose2d(8, 8, 3, padding=1),
    ],
    ids=["conv1d", "conv2d", "conv3d", "grouped", "depthwise", "transposed"],
)
def test_identity_conv_reproduces_input(conv):
    initialize(conv, "identity")
    x = torch.randn(2, conv.in_channels, *([6] * (conv.weight.dim() - 2)), generator=gen())
    with torch.no_grad():
        assert torch.allclose(conv(x), x, atol=1e-6)


def test_identity_linear_and_scaled():
    square, wide = nn.Linear(10, 10), nn.Linear(6, 4)
    initialize(nn.ModuleList([square, wide]), "identity", gain=0.5)
    assert torch.equal(square.weight, 0.5 * torch.eye(10))
    assert torch.equal(wide.weight, 0.5 * torch.eye(4, 6))
    assert torch.equal(identity_(torch.empty(3, 5)), torch.eye(3, 5))


def test_wrappers_and_variance_scaling():
    w = torch.empty(400, 600)
    assert he_(w, generator=gen()).std().item() == pytest.approx(math.sqrt(2 / 600), rel=0.02)
    assert lecun_(w, generator=gen()).std().item() == pytest.approx(math.sqrt(1 / 600), rel=0.02)
    assert xavier_(w, generator=gen()).abs().max().item() <= math.sqrt(6 / 1000)
    std = variance_scaling_(w, 3.0, "fan_out", "uniform", gen()).std().item()
    assert std == pytest.approx(math.sqrt(3 / 400), rel=0.02)


def test_truncated_normal_bounds_and_generator():
    w = truncated_normal_(torch.empty(20000), mean=1.0, std=2.0, a=0.0, b=3.0, generator=gen())
    assert w.min().item() >= 0.0 and w.max().item() <= 3.0
    assert torch.equal(w, truncated_normal_(torch.empty(20000), 1.0, 2.0, 0.0, 3.0, gen()))


def test_same_generator_seed_same_values_and_global_rng_untouched():
    state = torch.get_rng_state()
    for fn in (
        orthogonal_,
        he_,
        lambda t, generator: sparse_(t, num_nonzero=3, generator=generator),
    ):
        a = fn(torch.empty(8, 12), generator=gen(7))
        b = fn(torch.empty(8, 12), generator=gen(7))
        c = fn(torch.empty(8, 12), generator=gen(8))
        assert torch.equal(a, b) and not torch.equal(a, c)
    he_(torch.empty(3, 3))  # generator=None: fresh OS-seeded generator
    assert torch.equal(state, torch.get_rng_state())


def test_float64_and_requires_grad_parameters():
    layer = nn.Linear(5, 5).double()
    initialize(layer, "orthogonal", seed=0)
    assert layer.weight.dtype == torch.float64 and layer.weight.requires_grad
    assert torch.allclose(layer.weight @ layer.weight.T, torch.eye(5, dtype=torch.float64))
    assert F.linear(torch.ones(1, 5, dtype=torch.float64), layer.weight).requires_grad

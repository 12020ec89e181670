"""Fans of plain, grouped, depthwise and transposed convolutions, embeddings and RNNs."""

import pytest
import torch
from torch import nn

from initlab.initializers import Fans, compute_fans, initialize


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (nn.Linear(30, 20), Fans(30, 20)),
        (nn.Conv1d(4, 6, 5), Fans(4 * 5, 6 * 5)),
        (nn.Conv2d(8, 16, 3), Fans(8 * 9, 16 * 9)),
        (nn.Conv3d(2, 4, 3), Fans(2 * 27, 4 * 27)),
        # groups=4: each output unit sees in/groups = 2 channels; each input channel feeds
        # out/groups = 4 channels. torch's helper would say fan_out = 16 * 9.
        (nn.Conv2d(8, 16, 3, groups=4), Fans(2 * 9, 4 * 9)),
        # depthwise: one channel in, one channel out per group.
        (nn.Conv2d(8, 8, 3, groups=8), Fans(9, 9)),
        # transposed: weight is (in, out/groups, k, k); same forward fans as the Conv.
        (nn.ConvTranspose2d(8, 16, 3), Fans(8 * 9, 16 * 9)),
        (nn.ConvTranspose2d(8, 16, 3, groups=4), Fans(2 * 9, 4 * 9)),
        (nn.ConvTranspose1d(6, 6, 4, groups=6), Fans(4, 4)),
        (nn.Embedding(100, 12), Fans(1, 12)),
        (nn.LSTM(5, 7), Fans(5, 7)),
        (nn.GRUCell(3, 4), Fans(3, 4)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_compute_fans_of_layers(layer, expected):
    assert compute_fans(layer) == expected


def test_tensor_fans_match_layer_layout():
    conv_t = nn.ConvTranspose2d(8, 16, 3, groups=4)
    assert compute_fans(conv_t.weight, groups=4, transposed=True) == Fans(18, 36)
    assert compute_fans(torch.empty(20, 30)) == Fans(30, 20)
    assert Fans(10, 30).select("fan_avg") == 20.0


def test_fan_rule_needs_two_dims():
    with pytest.raises(ValueError, match="bias_like.*at least 2 dims"):
        compute_fans(torch.empty(5), name="bias_like")


def test_he_uses_per_group_and_transposed_fans():
    grouped = nn.Conv2d(8, 64, 3, groups=4)  # fan_in = 2 * 9, fan_out = 16 * 9
    report = initialize(nn.Sequential(grouped), "he", seed=0, mode="fan_out")
    row = report.find("0")
    assert (row["fan_in"], row["fan_out"]) == (18, 144)
    assert row["std"] == pytest.approx((2 / 144) ** 0.5)
    transposed = nn.ConvTranspose2d(64, 32, 3)  # fan_in = 64 * 9 (torch would use 32 * 9)
    report = initialize(nn.Sequential(transposed), "he", seed=0)
    assert report.find("0")["std"] == pytest.approx((2 / (64 * 9)) ** 0.5)
    assert transposed.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.03)

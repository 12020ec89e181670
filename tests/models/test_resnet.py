"""CIFAR-style ResNet: structure (6n+2 weight layers, block attributes) and training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from initlab.models.activations import activation_factory
from initlab.models.resnet import BasicBlock, ResNet

RELU = activation_factory("relu")


def weight_layers(model: nn.Module) -> tuple[int, int]:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return len(convs), len(linears)


@pytest.mark.parametrize("depth, n", [(8, 1), (20, 3), (56, 9)])
def test_depth_is_6n_plus_2_weight_layers(depth: int, n: int) -> None:
    model = ResNet((3, 32, 32), 10, RELU, depth=depth)
    assert weight_layers(model) == (depth - 1, 1)
    assert len(model.residual_blocks()) == 3 * n
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 10


def test_resnet20_has_19_convs_and_one_linear() -> None:
    assert weight_layers(ResNet((3, 32, 32), 10, RELU, depth=20)) == (19, 1)


def test_shortcut_b_adds_two_projection_convs() -> None:
    model = ResNet((3, 32, 32), 10, RELU, depth=20, shortcut="B")
    assert weight_layers(model) == (21, 1)
    projected = [b for b in model.residual_blocks() if b.downsample is not None]
    assert len(projected) == 2


def test_stage_widths_and_strides() -> None:
    model = ResNet((3, 32, 32), 10, RELU, depth=14, width=8)
    blocks = model.residual_blocks()
    assert [b.conv2.out_channels for b in blocks] == [8, 8, 16, 16, 32, 32]
    assert [b.conv1.stride[0] for b in blocks] == [1, 1, 2, 1, 2, 1]
    feats = model.stages(model.stem(torch.randn(2, 3, 32, 32)))
    assert feats.shape == (2, 32, 8, 8)


def test_block_exposes_branch_and_fixup_parameters() -> None:
    model = ResNet((1, 8, 8), 10, RELU, depth=8, norm="none")
    assert model.is_residual is True and model.num_branch_layers == 2
    for block in model.residual_blocks():
        assert isinstance(block, BasicBlock)
        assert block.branch_convs == [block.conv1, block.conv2]
        assert isinstance(block.norm1, nn.Identity) and isinstance(block.norm2, nn.Identity)
        for name in ("bias1a", "bias1b", "bias2a", "bias2b"):
            p = getattr(block, name)
            assert isinstance(p, nn.Parameter) and p.shape == (1,) and p.item() == 0.0
        assert block.scale.item() == 1.0
    batch = ResNet((1, 8, 8), 10, RELU, depth=8, norm="batch")
    assert isinstance(batch.residual_blocks()[0].norm1, nn.BatchNorm2d)


def test_fixup_scalars_enter_the_block_as_in_the_paper() -> None:
    torch.manual_seed(0)
    block = BasicBlock(4, 4, 1, RELU, norm="none")
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        for name, value in (
            ("bias1a", 0.1),
            ("bias1b", -0.2),
            ("bias2a", 0.3),
            ("bias2b", 0.05),
            ("scale", 0.5),
        ):
            getattr(block, name).fill_(value)
        ref = block.conv1(x + 0.1)
        ref = torch.relu(ref - 0.2)
        ref = block.conv2(ref + 0.3) * 0.5 + 0.05
        ref = torch.relu(ref + x)
        assert torch.allclose(block(x), ref, atol=1e-6)


@pytest.mark.parametrize("depth", [7, 10, 0, 2])
def test_bad_depth_names_the_key_and_the_form(depth: int) -> None:
    with pytest.raises(ValueError, match=r"model\.depth.*6n\+2"):
        ResNet((3, 32, 32), 10, RELU, depth=depth)


def test_bad_options_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"model\.norm.*batch, none"):
        ResNet((3, 32, 32), 10, RELU, norm="layer")
    with pytest.raises(ValueError, match=r"model\.shortcut.*A, B"):
        ResNet((3, 32, 32), 10, RELU, shortcut="C")
    with pytest.raises(ValueError, match=r"model\.width"):
        ResNet((3, 32, 32), 10, RELU, width=0)
    with pytest.raises(ValueError, match="image inputs"):
        ResNet((64,), 10, RELU)


def train_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    return losses


@pytest.mark.parametrize(
    "shape, norm, shortcut",
    [
        ((1, 8, 8), "batch", "A"),
        ((1, 8, 8), "none", "A"),
        ((3, 32, 32), "batch", "A"),
        ((3, 32, 32), "none", "B"),
    ],
)
def test_trains_on_digits_and_cifar_shaped_inputs(shape, norm, shortcut) -> None:
    torch.manual_seed(0)
    model = ResNet(shape, 10, RELU, depth=8, width=8, norm=norm, shortcut=shortcut)
    x, y = torch.randn(16, *shape), torch.arange(16) % 10
    assert model(x).shape == (16, 10)
    # one step: every parameter gets a finite, nonzero gradient
    nn.functional.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name
    model.zero_grad()
    losses = train_steps(model, x, y, 8)
    assert losses[-1] < losses[0]

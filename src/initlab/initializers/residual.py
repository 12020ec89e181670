"""Architecture-aware schemes for residual networks: Fixup and zero-init of the last
residual layer.

Both need a model that declares residual branches: ``model.is_residual`` true and
``model.residual_blocks()`` returning the blocks in forward order, each block exposing its
branch convolutions (``block.branch_convs``, else ``conv1 .. conv<m>``) and, when it has
normalization, ``block.norm2`` (the norm after the last branch layer). ``initlab.models.
resnet.ResNet`` is such a model; anything else is refused with a ``ValueError`` that names
the init and the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from initlab.initializers.registry import InitContext, register_scheme
from initlab.initializers.rules import VarianceRule, apply_rule

#: The "standard method" both schemes start from: He et al. (2015), normal, fan_in.
HE_DEFAULTS: dict[str, Any] = {"gain": "auto", "distribution": "normal", "mode": "fan_in"}


def residual_blocks(model: nn.Module, scheme: str) -> list[nn.Module]:
    """The model's residual blocks, or a ``ValueError`` naming the init and the model."""
    blocks_fn = getattr(model, "residual_blocks", None)
    blocks = list(blocks_fn()) if getattr(model, "is_residual", False) and blocks_fn else []
    if not blocks:
        raise ValueError(
            f"init={scheme} needs a model with residual branches (e.g. model=resnet); "
            f"got {type(model).__name__}"
        )
    return blocks


def branch_layers(block: nn.Module, m: int) -> list[nn.Module]:
    """The ``m`` weight layers of a block's residual branch, in forward order."""
    layers = getattr(block, "branch_convs", None)
    if layers is None:
        layers = [getattr(block, f"conv{i}", None) for i in range(1, m + 1)]
    layers = list(layers)
    if len(layers) != m or any(getattr(layer, "weight", None) is None for layer in layers):
        raise ValueError(
            f"{type(block).__name__} does not expose its {m} residual-branch layers "
            "(branch_convs or conv1..conv<m> with a weight)"
        )
    return layers


def _names(model: nn.Module) -> dict[int, str]:
    return {id(module): name or type(model).__name__ for name, module in model.named_modules()}


def _update_row(ctx: InitContext, layer: str, param: str, tensor: torch.Tensor,
                **fields: Any) -> None:
    row = ctx.report.find(layer, param)
    if tensor.numel() == 0:  # a zero-size layer: nothing to set, its row says skipped
        return
    actual = tensor.detach().float().std().item() if tensor.numel() > 1 else None
    row.update(actual_std=actual, **fields)


def _zero(ctx: InitContext, names: dict[int, str], module: nn.Module, param: str,
          rule: str) -> None:
    tensor = getattr(module, param, None)
    if tensor is None:
        return
    with torch.no_grad():
        tensor.zero_()
    _update_row(ctx, names[id(module)], param, tensor, rule=rule, std=0.0, bound=None, gain=None)


def _he_rule(ctx: InitContext) -> VarianceRule:
    p = ctx.params
    return VarianceRule("he", distribution=p["distribution"], mode=p["mode"], gain=p["gain"],
                        he=True)


def fixup_multiplier(num_branches: int, branch_layers: int) -> float:
    """Zhang et al. (2019), Fixup rule 2: weights inside a residual branch (all but its
    last layer) are scaled by ``L^(-1 / (2m - 2))``, ``L`` residual branches of ``m``
    layers each. ``m >= 2`` (the last layer of the branch is zero-initialized)."""
    if num_branches < 1:
        raise ValueError(f"Fixup needs at least one residual branch; got L={num_branches}")
    if branch_layers < 2:
        raise ValueError(
            f"Fixup needs residual branches of m >= 2 layers; got m={branch_layers}"
        )
    return float(num_branches) ** (-1.0 / (2 * branch_layers - 2))


@register_scheme("fixup", defaults=dict(HE_DEFAULTS))
def fixup_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Zhang, Dauphin & Ma (2019), "Fixup Initialization: Residual Learning Without
    Normalization", section 3: (1) the classification layer and the last layer of each
    residual branch are zero; (2) every other layer gets a standard init (He, ``fan_in``,
    normal) and the layers inside residual branches (all but the last) are then scaled by
    ``L^(-1/(2m-2))``, ``L`` = number of residual branches, ``m`` = layers per branch
    (``model.num_branch_layers``); (3) the scalar biases (``bias1a/1b/2a/2b``) are 0 and the
    scalar multipliers (``scale``) 1. Stem and shortcut layers keep plain He."""
    blocks = residual_blocks(model, "fixup")
    m = int(getattr(model, "num_branch_layers", 2))
    factor = fixup_multiplier(len(blocks), m)
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        raise ValueError(
            f"init=fixup needs the classification layer as model.head; "
            f"{type(model).__name__} has none"
        )
    apply_rule(model, ctx, _he_rule(ctx))
    names = _names(model)
    for block in blocks:
        layers = branch_layers(block, m)
        for layer in layers[:-1]:
            with torch.no_grad():
                layer.weight.mul_(factor)
            row = ctx.report.find(names[id(layer)], "weight")
            _update_row(ctx, names[id(layer)], "weight", layer.weight,
                        rule=f"fixup_{row['rule']}_x{factor:.4g}",
                        std=None if row["std"] is None else row["std"] * factor,
                        bound=None if row["bound"] is None else row["bound"] * factor)
        _zero(ctx, names, layers[-1], "weight", "fixup_zeros")
        _zero(ctx, names, layers[-1], "bias", "fixup_zeros")
        for name, param in block.named_parameters(recurse=False):
            value = 1.0 if name == "scale" else 0.0 if name.startswith("bias") else None
            if value is None:
                continue
            with torch.no_grad():
                param.fill_(value)
            _update_row(ctx, names[id(block)], name, param,
                        rule="fixup_ones" if value else "fixup_zeros", std=0.0)
    for module in head.modules():
        for param in ("weight", "bias"):
            if isinstance(getattr(module, param, None), nn.Parameter):
                _zero(ctx, names, module, param, "fixup_zeros")


@register_scheme("zero_residual", defaults=dict(HE_DEFAULTS))
def zero_residual_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Zero-init of the last residual layer: Goyal et al. (2017), "Accurate, Large
    Minibatch SGD", section 5.1, and He et al. (2019), "Bag of Tricks for Image
    Classification", section 3.1 ("zero gamma"). He (``fan_in``, normal) everywhere, then
    the weight (gamma) of the last normalization layer of every residual branch
    (``norm2``) is 0, so each block starts as the identity; a block without normalization
    gets its last branch layer zeroed instead."""
    blocks = residual_blocks(model, "zero_residual")
    m = int(getattr(model, "num_branch_layers", 2))
    apply_rule(model, ctx, _he_rule(ctx))
    names = _names(model)
    for block in blocks:
        scale = getattr(block, "scale", None)
        if isinstance(scale, nn.Parameter):  # Fixup's multiplier, if the block has one: 1
            with torch.no_grad():
                scale.fill_(1.0)
            _update_row(ctx, names[id(block)], "scale", scale, rule="ones", std=0.0)
        norm = getattr(block, "norm2", None)
        if isinstance(getattr(norm, "weight", None), nn.Parameter):
            _zero(ctx, names, norm, "weight", "zero_gamma")
        else:
            last = branch_layers(block, m)[-1]
            _zero(ctx, names, last, "weight", "zeros_last_branch_layer")
            _zero(ctx, names, last, "bias", "zeros_last_branch_layer")


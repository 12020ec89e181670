"""Walk a model and classify every parameter it owns into a role.

Roles: ``weight`` (the layer's main weights: Linear, Conv*, ConvTranspose*, RNN input and
projection weights, any other >= 2-D parameter), ``recurrent`` (RNN ``weight_hh``),
``embedding``, ``bias``, ``norm_weight`` / ``norm_bias`` (BatchNorm, LayerNorm, GroupNorm,
InstanceNorm, RMSNorm) and ``other`` (1-D parameters such as PReLU slopes: left untouched).
Weights are split into independent blocks: one per group for grouped convolutions and one
per gate for RNN/LSTM/GRU, each with its own fans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from initlab.initializers.fans import Fans, tensor_fans, torch_fan_in

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


@dataclass
class Slot:
    """One parameter to initialize."""

    layer: str
    module: nn.Module
    param: str
    tensor: torch.Tensor
    role: str
    blocks: list[torch.Tensor] = field(default_factory=list)
    fans: Fans | None = None
    transposed: bool = False
    #: PyTorch's own default for this parameter: ("uniform", bound) or ("normal", std).
    pytorch_default: tuple[str, float] | None = None
    #: role "neutral": the value at which the parameter changes nothing
    neutral: float | None = None

    @property
    def layer_type(self) -> str:
        return type(self.module).__name__


def pytorch_bound(fan_in: int) -> float:
    """PyTorch's default bound ``1 / sqrt(fan_in)`` for Linear/Conv weights and biases; 0 for
    a zero fan_in, as its ``reset_parameters`` does (the bias of ``nn.Linear(0, n)`` is 0)."""
    return 1.0 / fan_in**0.5 if fan_in > 0 else 0.0


def _bias_partner(module: nn.Module, name: str) -> torch.Tensor | None:
    """The weight a bias belongs to: ``bias_ih_l0`` -> ``weight_ih_l0``, ``bias`` -> ``weight``."""
    params = dict(module.named_parameters(recurse=False))
    for candidate in (name.replace("bias", "weight", 1), "weight", "in_proj_weight"):
        weight = params.get(candidate)
        if weight is not None and weight.dim() >= 2:
            return weight
    return None


def _rnn_slot(slot: Slot, module: nn.RNNBase | nn.RNNCellBase) -> Slot:
    hidden = module.hidden_size
    bound = 1.0 / hidden**0.5
    slot.pytorch_default = ("uniform", bound)
    if slot.tensor.dim() < 2:
        slot.role = "bias"
        partner = _bias_partner(module, slot.param)
        slot.fans = Fans(partner.shape[1], hidden) if partner is not None else None
        return slot
    gates = slot.tensor.shape[0] // hidden if slot.param.startswith("weight_") else 1
    if slot.param.startswith("weight_hr"):
        gates = 1
    slot.role = "recurrent" if slot.param.startswith("weight_hh") else "weight"
    slot.blocks = list(slot.tensor.chunk(max(gates, 1), dim=0))
    slot.fans = tensor_fans(slot.blocks[0], name=slot.param)
    return slot


def classify(layer: str, module: nn.Module, name: str, tensor: torch.Tensor) -> Slot:
    slot = Slot(layer=layer, module=module, param=name, tensor=tensor, role="other")
    # a module's own reparametrization (e.g. Fixup's scalar biases and multiplier in the
    # ResNet block): set to the value that changes nothing, not treated as a layer's bias
    neutral = getattr(module, "NEUTRAL_PARAMS", {})
    if name in neutral:
        slot.role, slot.neutral = "neutral", float(neutral[name])
        return slot
    if isinstance(module, NORM_TYPES):
        slot.role = "norm_bias" if name == "bias" else "norm_weight"
        return slot
    if isinstance(module, nn.RNNBase | nn.RNNCellBase):
        return _rnn_slot(slot, module)
    if isinstance(module, nn.Embedding | nn.EmbeddingBag) and name == "weight":
        slot.role = "embedding"
        slot.blocks = [tensor]
        slot.fans = Fans(1, tensor.shape[1])
        slot.pytorch_default = ("normal", 1.0)
        return slot
    if tensor.dim() >= 2:
        groups = getattr(module, "groups", 1) if isinstance(module, nn.modules.conv._ConvNd) else 1
        slot.transposed = bool(getattr(module, "transposed", False))
        slot.role = "weight"
        slot.blocks = list(tensor.chunk(groups, dim=0))
        slot.fans = tensor_fans(slot.blocks[0], transposed=slot.transposed, name=f"{layer}.{name}")
        slot.pytorch_default = ("uniform", pytorch_bound(torch_fan_in(tensor)))
        return slot
    if name.startswith("bias"):
        slot.role = "bias"
        partner = _bias_partner(module, name)
        if partner is not None:
            transposed = bool(getattr(module, "transposed", False))
            groups = (
                getattr(module, "groups", 1) if isinstance(module, nn.modules.conv._ConvNd) else 1
            )
            slot.fans = tensor_fans(partner, groups=groups, transposed=transposed)
            slot.pytorch_default = ("uniform", pytorch_bound(torch_fan_in(partner)))
    return slot


def iter_slots(model: nn.Module) -> Iterator[Slot]:
    """Every parameter of ``model`` once (shared parameters are visited the first time)."""
    seen: set[int] = set()
    for layer, module in model.named_modules():
        for name, tensor in module.named_parameters(recurse=False):
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            if isinstance(tensor, nn.parameter.UninitializedParameter):
                raise ValueError(
                    f"{layer or type(model).__name__}.{name} is a lazy parameter that has no "
                    "shape yet: run one forward pass before initializing"
                )
            yield classify(layer or type(model).__name__, module, name, tensor)

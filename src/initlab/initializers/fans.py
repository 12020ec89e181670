"""Fan-in / fan-out of weight tensors and layers.

Conventions (forward direction of the layer; every grouped block is counted on its own):

* ``Linear`` weight ``(out, in)``: ``fan_in = in``, ``fan_out = out``.
* ``Conv`` weight ``(out, in/groups, *k)``: ``fan_in = in/groups * prod(k)``,
  ``fan_out = out/groups * prod(k)`` (PyTorch's own helper forgets the ``/groups`` in
  ``fan_out``, which matters for grouped and depthwise convolutions).
* ``ConvTranspose`` weight ``(in, out/groups, *k)``: the layout is swapped, so
  ``fan_in = in/groups * prod(k)`` and ``fan_out = out/groups * prod(k)`` (stride ignored).
* ``Embedding`` weight ``(num_embeddings, dim)``: ``fan_in = 1`` (a one-hot input has exactly
  one active entry, so a unit-variance row gives unit-variance output), ``fan_out = dim``.
* RNN/LSTM/GRU: fans of one gate block of ``weight_ih_l0`` (``fan_in = input_size``,
  ``fan_out = hidden_size``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn


class Fans(NamedTuple):
    fan_in: int
    fan_out: int

    def select(self, mode: str) -> float:
        """The fan named by ``mode``: ``fan_in``, ``fan_out`` or ``fan_avg`` (their mean)."""
        if mode == "fan_in":
            return float(self.fan_in)
        if mode == "fan_out":
            return float(self.fan_out)
        if mode == "fan_avg":
            return (self.fan_in + self.fan_out) / 2.0
        raise ValueError(f"init.mode={mode!r} is not allowed; allowed: fan_avg, fan_in, fan_out")


def tensor_fans(
    tensor: torch.Tensor, *, groups: int = 1, transposed: bool = False, name: str = "tensor"
) -> Fans:
    """Fans of a weight tensor laid out as ``(out, in, *k)`` (or ``(in, out, *k)`` if
    ``transposed``); ``groups`` divides the grouped side (dim 0)."""
    if tensor.dim() < 2:
        raise ValueError(
            f"{name}: a fan-based rule needs a tensor with at least 2 dims, "
            f"got shape {tuple(tensor.shape)}"
        )
    if groups < 1 or tensor.shape[0] % groups:
        raise ValueError(f"groups={groups} does not divide dim 0 of {name} {tuple(tensor.shape)}")
    receptive = math.prod(tensor.shape[2:])
    grouped = tensor.shape[0] // groups * receptive
    other = tensor.shape[1] * receptive
    if transposed:
        return Fans(fan_in=grouped, fan_out=other)
    return Fans(fan_in=other, fan_out=grouped)


def torch_fan_in(tensor: torch.Tensor) -> int:
    """``fan_in`` exactly as ``torch.nn.init`` computes it (``size(1) * prod(k)``), used to
    reproduce PyTorch's default initialization."""
    return tensor.shape[1] * math.prod(tensor.shape[2:])


def compute_fans(
    obj: torch.Tensor | nn.Module,
    *,
    groups: int = 1,
    transposed: bool = False,
    name: str = "tensor",
) -> Fans:
    """Fans of a tensor (``groups``/``transposed`` describe its layout) or of a layer.

    For a module the layout is read from the module itself (``groups``, transposed conv,
    embedding, recurrent gates); see the module docstring for the conventions.
    """
    if isinstance(obj, torch.Tensor):
        return tensor_fans(obj, groups=groups, transposed=transposed, name=name)
    if isinstance(obj, nn.modules.conv._ConvNd):
        return tensor_fans(
            obj.weight, groups=obj.groups, transposed=obj.transposed, name=type(obj).__name__
        )
    if isinstance(obj, nn.Embedding | nn.EmbeddingBag):
        return Fans(fan_in=1, fan_out=obj.embedding_dim)
    if isinstance(obj, nn.RNNBase | nn.RNNCellBase):
        return Fans(fan_in=obj.input_size, fan_out=obj.hidden_size)
    weight = getattr(obj, "weight", None)
    if isinstance(weight, torch.Tensor):
        return tensor_fans(weight, name=f"{type(obj).__name__}.weight")
    raise ValueError(f"cannot compute fans of {type(obj).__name__}: it has no weight tensor")

"""Per-tensor rules and ``apply_rule``, which applies one rule to every layer of a model.

A rule fills one weight block (``weight``) and, when ``bias: scheme`` is chosen, a bias
(``bias``); both return the report fields (``rule``, ``gain``, ``std``, ``bound``).
``apply_rule`` handles the layer types: norm layers get weight 1 / bias 0 whatever the
scheme, biases follow the ``bias`` option (``zeros`` | ``constant`` with ``bias_value`` |
``scheme``), RNN ``weight_hh`` follows the ``recurrent`` option (null/``same`` = the scheme,
``orthogonal``, ``identity``), an Embedding's ``padding_idx`` row is zeroed afterwards, and
1-D parameters that are not biases (e.g. PReLU slopes) are left unchanged. A parameter
with zero elements (a zero-size layer), and a bias whose fan is 0 under a fan-based rule,
are skipped: left as they are, reported with a ``skipped (...)`` rule, and named in one
warning (``torch.nn.init`` also warns and leaves zero-element tensors alone).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from initlab.initializers import tensor as T
from initlab.initializers.fans import Fans
from initlab.initializers.gains import gain_for, he_gain
from initlab.initializers.layers import Slot, iter_slots
from initlab.initializers.registry import InitContext

Info = dict[str, Any]

#: Report rules of the parameters ``apply_rule`` leaves as they are.
SKIPPED_EMPTY = "skipped (zero elements)"
SKIPPED_ZERO_FAN = "skipped ({mode} = 0)"


def slot_activation(slot: Slot, ctx: InitContext) -> nn.Module | None:
    """The nonlinearity after this layer: an ``nn.RNN``'s own one, else the model's."""
    nonlinearity = getattr(slot.module, "nonlinearity", None)
    if isinstance(slot.module, nn.RNNBase | nn.RNNCellBase) and nonlinearity in ("tanh", "relu"):
        return nn.Tanh() if nonlinearity == "tanh" else nn.ReLU()
    return ctx.activation


class Rule:
    name = "rule"

    def weight(self, block: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        raise NotImplementedError

    def bias(self, tensor: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        """Bias under ``bias: scheme``; zeros unless the rule has a distribution."""
        with torch.no_grad():
            tensor.zero_()
        return {"rule": "zeros", "std": 0.0}


class VarianceRule(Rule):
    """Zero-mean ``distribution`` with ``std = gain * sqrt(scale / fan)``, fan by ``mode``.
    ``gain`` is a number, ``auto`` or ``preserve`` (``gain_for``); with ``he=True``,
    ``auto`` is He's rectifier gain ``sqrt(2 / (1 + a^2))``."""

    def __init__(
        self,
        name: str,
        *,
        distribution: str,
        mode: str,
        gain: float | str = 1.0,
        scale: float = 1.0,
        he: bool = False,
    ) -> None:
        T.check_choice("init.distribution", distribution, T.DISTRIBUTIONS)
        T.check_choice("init.mode", mode, T.MODES)
        self.name, self.distribution, self.mode = name, distribution, mode
        self.gain, self.scale, self.he = gain, scale, he

    def _gain(self, slot: Slot, ctx: InitContext) -> float:
        if self.he and self.gain == "auto":
            return he_gain(slot_activation(slot, ctx))
        return gain_for(slot_activation(slot, ctx), self.gain)

    def _std(self, fans: Fans, slot: Slot, ctx: InitContext) -> tuple[float, float]:
        gain = self._gain(slot, ctx)
        return gain, gain * math.sqrt(self.scale / fans.select(self.mode))

    def weight(self, block: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        gain, std = self._std(slot.fans, slot, ctx)
        bound = T.sample_(block, std, self.distribution, ctx.generator)[1]
        return {
            "rule": f"{self.name}_{self.distribution}",
            "gain": gain,
            "std": std,
            "bound": bound,
        }

    def bias(self, tensor: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        if slot.fans is None:
            return super().bias(tensor, slot, ctx)
        if slot.fans.select(self.mode) == 0:  # the bias of a zero-size layer: no variance
            return {"rule": SKIPPED_ZERO_FAN.format(mode=self.mode)}
        return self.weight(tensor, slot, ctx)


class RandomRule(Rule):
    """Fixed-scale zero-mean ``distribution`` with standard deviation ``std``."""

    def __init__(self, std: float, distribution: str) -> None:
        T.check_choice("init.distribution", distribution, T.DISTRIBUTIONS)
        self.std, self.distribution = std, distribution
        self.name = f"random_{distribution}"

    def weight(self, block: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        bound = T.sample_(block, self.std, self.distribution, ctx.generator)[1]
        return {"rule": self.name, "std": self.std, "bound": bound}

    bias = weight


class ConstantRule(Rule):
    def __init__(self, value: float) -> None:
        self.value = float(value)
        self.name = "zeros" if self.value == 0 else "constant"

    def weight(self, block: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        with torch.no_grad():
            block.fill_(self.value)
        return {"rule": self.name, "std": 0.0}

    bias = weight


class DefaultRule(Rule):
    """PyTorch's own layer defaults (``slot.pytorch_default``)."""

    name = "default"

    def weight(self, block: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        if slot.pytorch_default is None:
            return super().bias(block, slot, ctx)
        kind, value = slot.pytorch_default
        if kind == "normal":
            T.normal_(block, value, ctx.generator)
            return {"rule": "default_normal", "std": value}
        T.uniform_(block, value, ctx.generator)
        return {"rule": "default_uniform", "std": value / math.sqrt(3.0), "bound": value}

    bias = weight


def _orthogonal_std(block: torch.Tensor, gain: float) -> float:
    rows = block.shape[0]
    return gain / math.sqrt(max(rows, block.numel() // rows))


class OrthogonalRule(Rule):
    name = "orthogonal"

    def __init__(self, gain: float | str = 1.0) -> None:
        self.gain = gain

    def weight(self, block: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        gain = gain_for(slot_activation(slot, ctx), self.gain)
        T.orthogonal_(block, gain, ctx.generator)
        return {"rule": self.name, "gain": gain, "std": _orthogonal_std(block, gain)}


class DeltaOrthogonalRule(OrthogonalRule):
    name = "delta_orthogonal"

    def weight(self, block: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        gain = gain_for(slot_activation(slot, ctx), self.gain)
        try:
            T.delta_orthogonal_(block, gain, ctx.generator, transposed=slot.transposed)
        except ValueError as err:
            raise ValueError(f"{slot.layer}.{slot.param}: {err}") from None
        # the centre tap's n_in orthonormal columns (n_out >= n_in) carry all of the norm:
        # ||W||^2 = gain^2 n_in
        n_in = block.shape[0] if slot.transposed else block.shape[1]
        return {"rule": self.name, "gain": gain, "std": gain / math.sqrt(block.numel() / n_in)}


class IdentityRule(OrthogonalRule):
    name = "identity"

    def weight(self, block: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        gain = gain_for(slot_activation(slot, ctx), self.gain)
        T.identity_(block, gain)
        return {"rule": self.name, "gain": gain}


class SparseRule(Rule):
    name = "sparse"

    def __init__(self, sparsity: float | None, num_nonzero: int | None, std: float) -> None:
        self.sparsity, self.num_nonzero, self.std = sparsity, num_nonzero, std

    def weight(self, block: torch.Tensor, slot: Slot, ctx: InitContext) -> Info:
        try:
            T.sparse_(block, self.sparsity, self.num_nonzero, self.std, ctx.generator)
        except ValueError as err:
            raise ValueError(f"{slot.layer}.{slot.param}: {err}") from None
        return {"rule": self.name, "std": self.std}


def recurrent_rule(option: str | None, rule: Rule) -> Rule:
    """The rule for RNN ``weight_hh`` under the ``recurrent`` option."""
    if option in (None, "same"):
        return rule
    if option == "orthogonal":
        return OrthogonalRule(1.0)
    if option == "identity":
        return IdentityRule(1.0)
    raise ValueError(
        f"init.recurrent={option!r} is not allowed; allowed: null, same, orthogonal, identity"
    )


def _bias_info(tensor: torch.Tensor, slot: Slot, ctx: InitContext, rule: Rule) -> Info:
    option = ctx.params.get("bias", "zeros")
    if option == "scheme":
        return rule.bias(tensor, slot, ctx)
    value = float(ctx.params.get("bias_value", 0.0)) if option == "constant" else 0.0
    with torch.no_grad():
        tensor.fill_(value)
    return {"rule": "constant" if option == "constant" else "zeros", "std": 0.0}


def init_slot(slot: Slot, ctx: InitContext, rule: Rule) -> Info:
    """Initialize one parameter and return its report fields."""
    if slot.tensor.numel() == 0:
        return {"rule": SKIPPED_EMPTY}
    if slot.role in ("weight", "embedding", "recurrent"):
        active = (
            recurrent_rule(ctx.params.get("recurrent"), rule) if slot.role == "recurrent" else rule
        )
        info = [active.weight(block, slot, ctx) for block in slot.blocks][0]
        padding_idx = getattr(slot.module, "padding_idx", None)
        if slot.role == "embedding" and padding_idx is not None:
            with torch.no_grad():
                slot.tensor[padding_idx].zero_()
        return info
    if slot.role == "bias":
        return _bias_info(slot.tensor, slot, ctx, rule)
    if slot.role in ("norm_weight", "norm_bias"):
        value = 1.0 if slot.role == "norm_weight" else 0.0
        with torch.no_grad():
            slot.tensor.fill_(value)
        return {"rule": "ones" if value else "zeros", "std": 0.0}
    if slot.role == "neutral":
        with torch.no_grad():
            slot.tensor.fill_(slot.neutral)
        return {"rule": "neutral", "std": 0.0}
    return {"rule": "unchanged"}


def add_row(ctx: InitContext, slot: Slot, info: Info) -> dict[str, Any]:
    tensor = slot.tensor.detach()
    actual = tensor.float().std().item() if tensor.numel() > 1 else None
    fans = slot.fans if slot.role not in ("norm_weight", "norm_bias", "neutral", "other") else None
    return ctx.report.add(
        layer=slot.layer,
        type=slot.layer_type,
        param=slot.param,
        shape="x".join(str(s) for s in tensor.shape),
        fan_in=fans.fan_in if fans else None,
        fan_out=fans.fan_out if fans else None,
        actual_std=actual,
        **info,
    )


def is_skipped(row: dict[str, Any]) -> bool:
    """Whether a report row is of a parameter ``apply_rule`` left as it was."""
    return str(row.get("rule") or "").startswith("skipped")


def warn_skipped(ctx: InitContext, rows: list[dict[str, Any]]) -> None:
    """One warning naming every skipped parameter (none: no warning)."""
    skipped = [f"{r['layer']}.{r['param']} (shape {r['shape'] or '()'}, {r['rule']})"
               for r in rows if is_skipped(r)]
    if skipped:
        scheme = ctx.report.scheme or "init"
        warnings.warn(f"init={scheme}: left {len(skipped)} parameter(s) unchanged, "
                      f"initializing them is a no-op: {', '.join(skipped)}",
                      UserWarning, stacklevel=3)


def apply_rule(model: nn.Module, ctx: InitContext, rule: Rule) -> None:
    """Initialize every parameter of ``model`` with ``rule`` (see module doc)."""
    rows = [add_row(ctx, slot, init_slot(slot, ctx, rule)) for slot in iter_slots(model)]
    warn_skipped(ctx, rows)

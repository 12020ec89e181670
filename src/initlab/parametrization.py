"""Width parametrizations: standard (SP), neural tangent (NTK) and maximal update (muP).

A parametrization says how the init variance and the learning rate of each layer scale
with the width ``n`` of the network, relative to a base width ``n0`` (``m = n / n0``; at
``n = n0`` all three are the same network and the same optimizer). Layers are classed as in
Yang et al. (2022), "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
Hyperparameter Transfer" (muTransfer), section 5 / table 3:

* ``input``: fan-in fixed, fan-out ~ n (first Linear, embeddings);
* ``hidden``: fan-in and fan-out ~ n;
* ``output``: fan-in ~ n, fan-out fixed (the head);
* ``vector``: biases, norm gains, gates (one width dimension at most; treated as input
  weights of fan-in 1), and the head's bias (``output_bias``, no width dimension).

Written in table 3's form (no forward multipliers; the init scheme gives the
``1/fan_in`` variance, e.g. ``init=he`` / ``lecun``), relative to ``n0``:

============  ============  ======================  ============================
param          init std      Adam lr                 SGD lr
============  ============  ======================  ============================
sp             as scheme     1                       1
ntk            as scheme     hidden, output 1/sqrt(m) hidden, output 1/m
mup            output        hidden, output 1/m      input, vector m; output 1/m
               1/sqrt(m)
               (or zero)
============  ============  ======================  ============================

and muP's attention logits ``q.k / d_head`` instead of ``/ sqrt(d_head)`` (written as
``sqrt(d0) / d_head`` so it equals SP's at the base width). NTK's rows are its
abc-equivalent form (Yang & Hu 2021, "Tensor Programs IV", section 3: the symmetry
``(a, b, c) -> (a + t, b - t, c - 2t)`` for SGD, ``c - t`` for Adam) of ``W = w / sqrt(n)``,
``w ~ N(0, 1)`` (Jacot et al. 2018).

``param_groups(model, param, base_lr, optimizer)`` gives the optimizer's groups (absolute
``lr`` per group); ``rescale_init`` is the init step that follows the init scheme.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

KINDS = ("sp", "ntk", "mup")
OUTPUT_INITS = ("scheme", "zero")
OPTIMIZERS = ("adam", "sgd")
CLASSES = ("input", "hidden", "output", "vector", "output_bias")


@dataclass(frozen=True)
class Parametrization:
    """``kind``: sp | ntk | mup; ``base_width``: n0 (null = the model's own width: every
    multiplier 1); ``output_init`` (muP): ``scheme`` (its draw, times ``1/sqrt(m)``) or
    ``zero`` (the readout zero-initialized, as Yang et al. recommend)."""

    kind: str = "sp"
    base_width: int | None = None
    output_init: str = "scheme"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"param.kind={self.kind!r} is not known; allowed: {', '.join(KINDS)}")
        bw = self.base_width
        if bw is not None and (isinstance(bw, bool) or not isinstance(bw, int) or bw < 1):
            raise ValueError(f"param.base_width={bw!r} must be a positive integer or null")
        if self.output_init not in OUTPUT_INITS:
            raise ValueError(f"param.output_init={self.output_init!r} is not known; allowed: "
                             f"{', '.join(OUTPUT_INITS)}")

    @classmethod
    def from_config(cls, cfg: Any) -> Parametrization:
        if cfg is None:
            return cls()
        return cls(str(cfg.get("kind", "sp")), cfg.get("base_width"),
                   str(cfg.get("output_init", "scheme")))

    def width_mult(self, model: nn.Module) -> float:
        return 1.0 if self.base_width is None else model_width(model) / self.base_width

    @property
    def is_identity(self) -> bool:
        """SP (or no base width): the ordinary network and optimizer."""
        return self.kind == "sp" or self.base_width is None


def model_width(model: nn.Module) -> int:
    width = getattr(model, "width", None)
    if not isinstance(width, int):
        raise ValueError(f"param needs a model with a width (model=mlp | transformer); got "
                         f"{type(model).__name__}")
    return width


def layer_classes(model: nn.Module) -> dict[str, str]:
    """Every parameter name of ``model`` -> its class (see the module doc): for the
    transformer from its layer roles, for the MLP from its layout (first Linear: input,
    ``head``: output)."""
    roles_fn = getattr(model, "layer_roles", None)
    if roles_fn is not None:
        roles = roles_fn()
        inputs = {id(m) for m in roles["embedding"]}
    elif hasattr(model, "blocks") and hasattr(model, "head"):
        linears = [m for m in model.blocks.modules() if isinstance(m, nn.Linear)]
        inputs = {id(linears[0])} if linears else set()
    else:
        raise ValueError(f"param needs a model whose input and output layers it knows "
                         f"(model=mlp | transformer); got {type(model).__name__}")
    head = model.head
    out: dict[str, str] = {}
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            if module is head:
                out[name] = "output" if p.dim() >= 2 else "output_bias"
            elif p.dim() < 2:
                out[name] = "vector"
            else:
                out[name] = "input" if id(module) in inputs else "hidden"
    return out


def lr_multiplier(kind: str, cls: str, m: float, optimizer: str) -> float:
    """The learning-rate multiplier of a layer class at width multiplier ``m`` (table in
    the module doc)."""
    if kind == "sp" or cls == "output_bias":
        return 1.0
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer {optimizer!r}: param={kind} knows {', '.join(OPTIMIZERS)}")
    if kind == "ntk":
        if cls in ("hidden", "output"):
            return 1 / math.sqrt(m) if optimizer == "adam" else 1 / m
        return 1.0
    if optimizer == "adam":  # mup
        return 1 / m if cls in ("hidden", "output") else 1.0
    return {"input": m, "vector": m, "hidden": 1.0, "output": 1 / m}[cls]


def optimizer_kind(target: str) -> str:
    """adam | sgd from an optimizer's ``_target_`` (Adam, AdamW count as adam)."""
    name = target.rsplit(".", 1)[-1].lower()
    return "adam" if name.startswith("adam") else "sgd" if name == "sgd" else name


def param_groups(model: nn.Module, param: Parametrization, base_lr: float,
                 optimizer: str = "adam") -> list[dict[str, Any]]:
    """Optimizer groups: one per (class, multiplier), each with its absolute ``lr``."""
    m = param.width_mult(model)
    classes = layer_classes(model)
    groups: dict[float, dict[str, Any]] = {}
    for name, p in model.named_parameters():
        mult = lr_multiplier(param.kind, classes[name], m, optimizer)
        group = groups.setdefault(mult, {"params": [], "lr": base_lr * mult, "names": []})
        group["params"].append(p)
        group["names"].append(name)
    return [{k: v for k, v in g.items() if k != "names"} for g in groups.values()]


def param_groups_factory(param: Parametrization, base_lr: float, optimizer_target: str
                         ) -> Callable[[nn.Module], list[dict[str, Any]]] | None:
    """``param_groups`` bound to the run's parametrization and optimizer, for the module
    (None under SP: the optimizer gets ``model.parameters()``)."""
    if param.is_identity:
        return None
    return partial(param_groups, param=param, base_lr=float(base_lr),
                   optimizer=optimizer_kind(optimizer_target))


def attention_scale(model: nn.Module, param: Parametrization) -> float | None:
    """muP: ``sqrt(d0) / d_head``; SP / NTK: ``1 / sqrt(d_head)``; None without attention."""
    heads = getattr(model, "heads", None)
    if heads is None or not hasattr(model, "set_attn_scale"):
        return None
    d = model_width(model) // heads
    if param.kind == "mup" and param.base_width is not None:
        return math.sqrt(param.base_width // heads) / d
    return 1 / math.sqrt(d)


def rescale_init(model: nn.Module, param: Parametrization, report: Any = None) -> None:
    """The parametrization's init step, after the init scheme: muP's output layer
    (std times ``1/sqrt(m)``, or zero) and attention scale; rows of ``report`` (an
    ``InitReport``) follow the change."""
    scale = attention_scale(model, param)
    if scale is not None:
        model.set_attn_scale(scale)
    if param.kind != "mup" or param.base_width is None:
        return
    m = param.width_mult(model)
    head = model.head
    factor = 0.0 if param.output_init == "zero" else 1 / math.sqrt(m)
    with torch.no_grad():
        head.weight.mul_(factor)
    if report is not None:
        name = next(n for n, mod in model.named_modules() if mod is head)
        try:
            row = report.find(name, "weight")
        except KeyError:
            return
        row.update(rule=f"{row['rule']}_mup_x{factor:.4g}",
                   std=None if row["std"] is None else row["std"] * factor,
                   actual_std=head.weight.detach().float().std().item())


class ParametrizedInitializer:
    """The run's initializer followed by ``rescale_init``: what the module applies."""

    def __init__(self, initializer: Any, param: Parametrization) -> None:
        self.initializer, self.param = initializer, param
        self.needs_data = getattr(initializer, "needs_data", False)
        self.scheme = getattr(initializer, "scheme", None)

    def __call__(self, model: nn.Module, **kwargs: Any) -> Any:
        report = self.initializer(model, **kwargs)
        rescale_init(model, self.param, report)
        return report

    def __repr__(self) -> str:
        return f"ParametrizedInitializer({self.initializer!r}, {self.param})"


def parametrize(initializer: Any, param_cfg: Any) -> Any:
    """The initializer a run applies under ``param_cfg`` (unchanged under SP)."""
    param = Parametrization.from_config(param_cfg)
    return initializer if param.is_identity else ParametrizedInitializer(initializer, param)

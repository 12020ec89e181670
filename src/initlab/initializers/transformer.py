"""Transformer init schemes: GPT-2, SmallInit, T-Fixup, DeepNet, ReZero-style zero
branches, and any registered scheme per layer role.

They need a model that names its layers by role: ``model.layer_roles()`` (embedding,
attn_qk, attn_v, attn_out, mlp_in, mlp_out, head: lists of modules), ``model.depth`` (the
number of layers N), ``model.width`` (d) and ``model.residual_blocks()``.
``initlab.models.transformer.Transformer`` is such a model; anything else is refused with
a ``ValueError`` naming the init and the model. Norm layers get 1 / 0 and biases follow the
common ``bias`` option, as in every scheme.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from initlab.initializers.registry import (
    COMMON_DEFAULTS,
    SCHEMES,
    InitContext,
    get_scheme,
    register_scheme,
)
from initlab.initializers.report import InitReport
from initlab.initializers.rules import RandomRule, VarianceRule, apply_rule
from initlab.initializers.validation import PARAM_CHECKS, choice, number

ROLES = ("embedding", "attn_qk", "attn_v", "attn_out", "mlp_in", "mlp_out", "head")


def _roles(model: nn.Module, scheme: str) -> dict[str, list[nn.Module]]:
    roles_fn = getattr(model, "layer_roles", None)
    if roles_fn is None:
        raise ValueError(f"init={scheme} needs a transformer that names its layer roles "
                         f"(model=transformer); got {type(model).__name__}")
    return roles_fn()


def _names(model: nn.Module) -> dict[int, str]:
    return {id(m): name or type(model).__name__ for name, m in model.named_modules()}


def _set(ctx: InitContext, names: dict[int, str], module: nn.Module, *, std: float | None,
         rule: str, bound: float | None = None, scale: float | None = None) -> None:
    """Record (and with ``scale``, first apply) a change of ``module.weight``."""
    w = module.weight
    if scale is not None:
        with torch.no_grad():
            w.mul_(scale)
    row = ctx.report.find(names[id(module)], "weight")
    row.update(rule=rule, std=std, bound=bound, actual_std=w.detach().float().std().item())


def _normal(ctx: InitContext, names: dict[int, str], module: nn.Module, std: float,
            rule: str) -> None:
    with torch.no_grad():
        module.weight.normal_(0.0, std, generator=ctx.generator)
    _set(ctx, names, module, std=std, rule=rule)


def _scale_rows(ctx: InitContext, names: dict[int, str], modules: list[nn.Module],
                factor: float, tag: str) -> None:
    for m in modules:
        row = ctx.report.find(names[id(m)], "weight")
        _set(ctx, names, m, scale=factor, rule=f"{row['rule']}_x{factor:.4g}_{tag}",
             std=None if row["std"] is None else row["std"] * factor,
             bound=None if row["bound"] is None else row["bound"] * factor)


def _xavier(ctx: InitContext, distribution: str, gain: float = 1.0) -> VarianceRule:
    return VarianceRule("xavier", distribution=distribution, mode="fan_avg", gain=gain)


# -- GPT-2 -------------------------------------------------------------------------------

def gpt2_residual_std(std: float, depth: int) -> float:
    """Radford et al. (2019), "Language Models are Unsupervised Multitask Learners",
    section 2.3: residual-layer weights scaled by ``1/sqrt(N)``, N = the residual layers
    (two per block): ``std / sqrt(2 * depth)``."""
    return std / math.sqrt(2 * depth)


@register_scheme("gpt2", defaults={"std": 0.02, "residual_scale": True})
def gpt2_scheme(model: nn.Module, ctx: InitContext) -> None:
    """GPT-2 (Radford et al. 2019; the GPT-1/2 code's ``N(0, 0.02)``): every Linear and
    Embedding weight ``N(0, std^2)``; with ``residual_scale`` the last layer of each
    residual branch (attention ``out``, MLP ``fc_out``) ``N(0, (std / sqrt(2 N))^2)``."""
    roles = _roles(model, "gpt2")
    apply_rule(model, ctx, RandomRule(ctx.params["std"], "normal"))
    if ctx.params["residual_scale"]:
        names = _names(model)
        std = gpt2_residual_std(ctx.params["std"], int(model.depth))
        for m in roles["attn_out"] + roles["mlp_out"]:
            _normal(ctx, names, m, std, "gpt2_residual_normal")


# -- SmallInit ---------------------------------------------------------------------------

def small_init_std(width: int) -> float:
    """Nguyen & Salazar (2019), "Transformers without Tears", section 2.3 (SmallInit):
    ``std = sqrt(2 / (d + 4d)) = sqrt(2 / (5d))``, the Xavier std of a ``d x 4d`` matrix."""
    return math.sqrt(2.0 / (5.0 * width))


@register_scheme("small_init", defaults={"embedding_std": None})
def small_init_scheme(model: nn.Module, ctx: InitContext) -> None:
    """SmallInit (Nguyen & Salazar 2019): every Linear and Embedding weight
    ``N(0, 2 / (5d))``, d = ``model.width``; ``embedding_std`` (a number) gives the
    embeddings (token / patch, position) a std of their own (e.g. 1e-4 for tiny
    embeddings), null keeps SmallInit's."""
    roles = _roles(model, "small_init")
    apply_rule(model, ctx, RandomRule(small_init_std(int(model.width)), "normal"))
    if ctx.params["embedding_std"] is not None:
        names = _names(model)
        for m in roles["embedding"]:
            _normal(ctx, names, m, float(ctx.params["embedding_std"]), "small_embedding")


# -- T-Fixup -----------------------------------------------------------------------------

def tfixup_factor(depth: int, variant: str) -> float:
    """Huang et al. (2020), "Improving Transformer Optimization Through Better
    Initialization", section 3.3: decoder branch weights (and input embeddings) scaled by
    ``(9N)^(-1/4)``, encoder branch weights by ``0.67 N^(-1/4)``."""
    return (9.0 * depth) ** -0.25 if variant == "decoder" else 0.67 * depth**-0.25


@register_scheme("tfixup", defaults={"variant": "auto"})
def tfixup_scheme(model: nn.Module, ctx: InitContext) -> None:
    """T-Fixup (Huang et al. 2020), for transformers without normalization
    (``model.norm=none``): Xavier uniform for every weight but the input embeddings, which
    are ``N(0, d^-1/2)`` (std ``d^-1/2``); then the attention ``v`` and ``out`` weights and
    both MLP weights of every block, and the input embeddings, are scaled by
    ``tfixup_factor(N, variant)``. ``variant: auto`` is ``decoder`` for the causal GPT and
    ``encoder`` for the ViT. A ViT's patch embedding (a Linear) keeps Xavier before the
    scaling; learned position embeddings count as input embeddings."""
    roles = _roles(model, "tfixup")
    variant = ctx.params["variant"]
    if variant == "auto":
        variant = "decoder" if getattr(model, "kind", "gpt") == "gpt" else "encoder"
    factor = tfixup_factor(int(model.depth), variant)
    apply_rule(model, ctx, _xavier(ctx, "uniform"))
    names = _names(model)
    emb_std = int(model.width) ** -0.5
    for m in roles["embedding"]:
        if isinstance(m, nn.Embedding):
            _normal(ctx, names, m, emb_std, "tfixup_embedding_normal")
    branch = roles["attn_v"] + roles["attn_out"] + roles["mlp_in"] + roles["mlp_out"]
    _scale_rows(ctx, names, branch + roles["embedding"], factor, f"tfixup_{variant}")


# -- DeepNet -----------------------------------------------------------------------------

def deepnet_beta(depth: int) -> float:
    """Wang et al. (2022), "DeepNet: Scaling Transformers to 1,000 Layers", table 1
    (encoder-only and decoder-only): init scale ``beta = (8N)^(-1/4)``."""
    return (8.0 * depth) ** -0.25


@register_scheme("deepnet", defaults={})
def deepnet_scheme(model: nn.Module, ctx: InitContext) -> None:
    """DeepNorm's init (Wang et al. 2022, figure 2): Xavier normal (gain 1) for every
    weight, with gain ``beta = (8N)^(-1/4)`` for the MLP weights and the attention ``v``
    and ``out`` projections (``q``, ``k`` keep gain 1). DeepNorm is a post-LN network
    whose residual is ``LN(alpha x + f(x))``, ``alpha = (2N)^(1/4)``: the model must be
    built so (``model.norm_position=post model.residual_alpha=deepnorm``)."""
    from initlab.models.transformer import deepnorm_alpha

    roles = _roles(model, "deepnet")
    depth = int(model.depth)
    alpha = float(getattr(model, "residual_alpha", 1.0))
    if getattr(model, "norm_position", None) != "post" or not math.isclose(
            alpha, deepnorm_alpha(depth), rel_tol=1e-6):
        raise ValueError(
            "init=deepnet needs DeepNorm's post-LN residual: set model.norm_position=post "
            f"model.residual_alpha=deepnorm (alpha = (2N)^(1/4) = {deepnorm_alpha(depth):.4g}); "
            f"got norm_position={getattr(model, 'norm_position', None)}, alpha={alpha:.4g}")
    apply_rule(model, ctx, _xavier(ctx, "normal"))
    names = _names(model)
    branch = roles["attn_v"] + roles["attn_out"] + roles["mlp_in"] + roles["mlp_out"]
    _scale_rows(ctx, names, branch, deepnet_beta(depth), "deepnet_beta")


# -- ReZero / zero-init branches -----------------------------------------------------------

@register_scheme("rezero", defaults={"base": "xavier"})
def rezero_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Zero-init residual branches, so every block starts as the identity: ReZero
    (Bachlechner et al. 2020, "ReZero is All You Need": ``x + g f(x)``, ``g = 0``) when the
    blocks have gates (``model.residual_gate=true``); otherwise the last layer of each
    branch (attention ``out``, MLP ``fc_out``: weight and bias) is zero. Every other
    parameter follows the ``base`` scheme (with its defaults)."""
    roles = _roles(model, "rezero")
    _run_scheme(ctx.params["base"], model, ctx)
    names = _names(model)
    gated = False
    for block in model.residual_blocks():
        for gate_name in ("gate1", "gate2"):
            gate = getattr(block, gate_name, None)
            if isinstance(gate, nn.Parameter):
                gated = True
                with torch.no_grad():
                    gate.zero_()
                ctx.report.find(names[id(block)], gate_name).update(
                    rule="rezero_zeros", std=0.0, actual_std=None)
    if gated:
        return
    for m in roles["attn_out"] + roles["mlp_out"]:
        for param in ("weight", "bias"):
            tensor = getattr(m, param, None)
            if isinstance(tensor, nn.Parameter):
                with torch.no_grad():
                    tensor.zero_()
                ctx.report.find(names[id(m)], param).update(
                    rule="zero_branch", std=0.0, bound=None, gain=None, actual_std=0.0)


# -- per role --------------------------------------------------------------------------------

def _run_scheme(name: str, model: nn.Module, ctx: InitContext) -> InitReport:
    """Run the registered scheme ``name`` (its defaults, this context's bias options and
    generator) on ``model``; its rows go to ``ctx.report``."""
    spec = get_scheme(name)
    if spec.needs_data:
        raise ValueError(f"init scheme {name!r} needs data; it cannot be a base or role scheme")
    params = {**spec.defaults, **{k: ctx.params[k] for k in COMMON_DEFAULTS if k in ctx.params}}
    spec.fn(model, InitContext(params, ctx.generator, ctx.activation, None, ctx.report))
    return ctx.report


@register_scheme("per_role", defaults={"default": "xavier", **{r: None for r in ROLES}})
def per_role_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Any registered scheme per layer role: ``default`` for the whole model, then for
    each role given (``embedding``, ``attn_qk``, ``attn_v``, ``attn_out``, ``mlp_in``,
    ``mlp_out``, ``head``) that scheme, with its paper defaults, on the role's layers
    (e.g. ``init.attn_qk=orthogonal init.head=zeros``)."""
    roles = _roles(model, "per_role")
    _run_scheme(ctx.params["default"], model, ctx)
    names = _names(model)
    for role in ROLES:
        scheme = ctx.params[role]
        if scheme is None:
            continue
        for m in roles[role]:
            sub = InitReport()
            _run_scheme(scheme, m, InitContext(ctx.params, ctx.generator, ctx.activation,
                                               None, sub))
            for row in sub.rows:
                layer = names[id(m)]
                ctx.report.find(layer, row["param"]).update(
                    {k: v for k, v in row.items() if k not in ("layer", "type")},
                    rule=f"{role}:{row['rule']}")


def _scheme_name(key: str, value: Any) -> None:
    if value is None and key.rsplit(".", 1)[-1] in ROLES:
        return
    if value not in SCHEMES:
        raise ValueError(f"{key}={value!r} is not allowed; allowed: "
                         f"{', '.join(sorted(SCHEMES))}")


PARAM_CHECKS.update({
    "residual_scale": choice(True, False),
    "embedding_std": number(0.0, strict=True, optional=True),
    "variant": choice("auto", "encoder", "decoder"),
    "base": _scheme_name,
    "default": _scheme_name,
    **{role: _scheme_name for role in ROLES},
})

"""The built-in schemes. Each docstring cites the paper and states the rule; the registered
defaults are the papers' choices. ``fan`` is chosen by ``mode`` (see ``fans.py``)."""

from __future__ import annotations

from torch import nn

from initlab.initializers.registry import InitContext, register_scheme
from initlab.initializers.rules import (
    ConstantRule,
    DefaultRule,
    DeltaOrthogonalRule,
    IdentityRule,
    OrthogonalRule,
    RandomRule,
    SparseRule,
    VarianceRule,
    apply_rule,
)


@register_scheme("random", defaults={"std": 0.01, "distribution": "normal"})
def random_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Small random weights of fixed scale: zero mean, standard deviation ``std`` (0.01, as
    in the pre-2010 practice Glorot & Bengio compare against); ``uniform`` uses bound
    ``std * sqrt(3)`` and ``truncated_normal`` is scaled so the std is ``std``."""
    p = ctx.params
    apply_rule(model, ctx, RandomRule(p["std"], p["distribution"]))


@register_scheme("zeros")
def zeros_scheme(model: nn.Module, ctx: InitContext) -> None:
    """All weights zero (the symmetric failure case: no unit can differ from its peers)."""
    apply_rule(model, ctx, ConstantRule(0.0))


@register_scheme("constant", defaults={"value": 0.01})
def constant_scheme(model: nn.Module, ctx: InitContext) -> None:
    """All weights equal to ``value`` (symmetric: shows why random init is needed)."""
    apply_rule(model, ctx, ConstantRule(ctx.params["value"]))


@register_scheme("default", defaults={"bias": "scheme"})
def default_scheme(model: nn.Module, ctx: InitContext) -> None:
    """PyTorch's layer defaults, drawn from the seeded generator: Linear/Conv weights
    ``kaiming_uniform(a=sqrt(5))`` = ``U(+-1/sqrt(fan_in))`` and biases the same (PyTorch's
    ``fan_in = size(1) * prod(k)``); RNN weights and biases ``U(+-1/sqrt(hidden_size))``;
    Embedding ``N(0, 1)``; norm layers 1 / 0."""
    apply_rule(model, ctx, DefaultRule())


@register_scheme("xavier", defaults={"gain": 1.0, "distribution": "uniform", "mode": "fan_avg"})
def xavier_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Glorot & Bengio (2010), "Understanding the difficulty of training deep feedforward
    neural networks": ``Var = gain^2 * 2 / (fan_in + fan_out)``; the paper's normalized
    initialization is uniform, bound ``gain * sqrt(6 / (fan_in + fan_out))``, gain 1."""
    p = ctx.params
    rule = VarianceRule("xavier", distribution=p["distribution"], mode=p["mode"], gain=p["gain"])
    apply_rule(model, ctx, rule)


@register_scheme("he", defaults={"gain": "auto", "distribution": "normal", "mode": "fan_in"})
def he_scheme(model: nn.Module, ctx: InitContext) -> None:
    """He et al. (2015), "Delving deep into rectifiers": ``Var = gain^2 / fan``, normal,
    ``fan_in`` (``fan_out`` also preserves backward signals). ``gain: auto`` is the paper's
    ``sqrt(2 / (1 + a^2))`` with ``a`` the leaky-ReLU slope of the activation and ``a = 0``
    for every other activation (so sqrt(2) for ReLU, tanh, or no activation)."""
    p = ctx.params
    rule = VarianceRule(
        "he", distribution=p["distribution"], mode=p["mode"], gain=p["gain"], he=True
    )
    apply_rule(model, ctx, rule)


@register_scheme("lecun", defaults={"gain": 1.0, "distribution": "normal", "mode": "fan_in"})
def lecun_scheme(model: nn.Module, ctx: InitContext) -> None:
    """LeCun et al. (1998), "Efficient BackProp": ``Var = gain^2 / fan_in`` (std
    ``fan_in^-1/2``), gain 1 (used with SELU by Klambauer et al. 2017)."""
    p = ctx.params
    rule = VarianceRule("lecun", distribution=p["distribution"], mode=p["mode"], gain=p["gain"])
    apply_rule(model, ctx, rule)


@register_scheme(
    "variance_scaling", defaults={"scale": 1.0, "distribution": "normal", "mode": "fan_in"}
)
def variance_scaling_scheme(model: nn.Module, ctx: InitContext) -> None:
    """The general variance-scaling family: ``Var = scale / fan``, fan by ``mode``
    (``fan_avg = (fan_in + fan_out) / 2``). LeCun is ``scale=1, fan_in``, He ``scale=2,
    fan_in``, Glorot ``scale=1, fan_avg``."""
    p = ctx.params
    rule = VarianceRule(
        "variance_scaling", distribution=p["distribution"], mode=p["mode"], scale=p["scale"]
    )
    apply_rule(model, ctx, rule)


@register_scheme("orthogonal", defaults={"gain": 1.0})
def orthogonal_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Saxe et al. (2014), "Exact solutions to the nonlinear dynamics of learning in deep
    linear neural networks": ``W = gain * Q`` with ``Q`` from the QR decomposition of a
    Gaussian matrix (signs of ``diag(R)`` corrected), so ``W W^T = gain^2 I`` (or
    ``W^T W``); conv weights viewed as ``(out, in * k)``, one block per group / gate."""
    apply_rule(model, ctx, OrthogonalRule(ctx.params["gain"]))


@register_scheme("delta_orthogonal", defaults={"gain": 1.0})
def delta_orthogonal_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Xiao et al. (2018), "Dynamical isometry and a mean field theory of CNNs": conv
    kernels are zero except the centre tap (index ``(k - 1) // 2``: the middle of an odd
    kernel, the tap ``padding='same'`` centres for an even one), an orthogonal ``out x in``
    matrix times ``gain`` (needs ``out >= in``); Linear/RNN weights get plain orthogonal."""
    apply_rule(model, ctx, DeltaOrthogonalRule(ctx.params["gain"]))


@register_scheme("identity", defaults={"gain": 1.0})
def identity_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Identity maps times ``gain``: ``eye`` on the leading square block of each matrix
    (Le et al. 2015, "A simple way to initialize recurrent networks of rectified linear
    units", for recurrent weights), the Dirac delta at tap ``(k - 1) // 2`` for convolutions."""
    apply_rule(model, ctx, IdentityRule(ctx.params["gain"]))


@register_scheme("sparse", defaults={"num_nonzero": 15, "sparsity": None, "std": 1.0})
def sparse_scheme(model: nn.Module, ctx: InitContext) -> None:
    """Martens (2010), "Deep learning via Hessian-free optimization": each unit gets
    ``num_nonzero`` (15) nonzero incoming weights from ``N(0, std^2)`` (unit Gaussian), the
    rest zero. ``sparsity`` (fraction of zero incoming weights), when not null, takes
    precedence over ``num_nonzero``."""
    p = ctx.params
    apply_rule(model, ctx, SparseRule(p["sparsity"], p["num_nonzero"], p["std"]))

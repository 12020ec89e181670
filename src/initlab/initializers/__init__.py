"""Initializer library: named schemes (``SCHEMES``), the Hydra target ``Initializer``, the
Python API ``initialize`` and tensor-level functions in the style of ``torch.nn.init``."""

from initlab.initializers import lsuv as _lsuv  # noqa: F401  (registers lsuv)
from initlab.initializers import residual as _residual  # noqa: F401  (fixup, zero_residual)
from initlab.initializers import schemes as _schemes  # noqa: F401  (registers the rest)
from initlab.initializers import transformer as _transformer  # noqa: F401  (gpt2, tfixup, ...)
from initlab.initializers.api import Initializer, initialize, make_generator
from initlab.initializers.fans import Fans, compute_fans
from initlab.initializers.gains import gain_for, preserve_gain, resolve_activation
from initlab.initializers.registry import SCHEMES, InitContext, SchemeSpec, register_scheme
from initlab.initializers.report import InitReport
from initlab.initializers.rules import Rule, apply_rule
from initlab.initializers.tensor import (
    TRUNC_STD,
    delta_orthogonal_,
    he_,
    identity_,
    lecun_,
    orthogonal_,
    sparse_,
    truncated_normal_,
    variance_scaling_,
    xavier_,
)
from initlab.initializers.validation import PARAM_CHECKS

__all__ = [
    "SCHEMES",
    "PARAM_CHECKS",
    "TRUNC_STD",
    "Fans",
    "InitContext",
    "InitReport",
    "Initializer",
    "Rule",
    "SchemeSpec",
    "apply_rule",
    "compute_fans",
    "delta_orthogonal_",
    "gain_for",
    "he_",
    "identity_",
    "initialize",
    "lecun_",
    "make_generator",
    "orthogonal_",
    "preserve_gain",
    "register_scheme",
    "resolve_activation",
    "sparse_",
    "truncated_normal_",
    "variance_scaling_",
    "xavier_",
]

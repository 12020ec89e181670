"""Mean-field signal propagation in wide random MLPs.

References:
  Poole, Lahiri, Raghu, Sohl-Dickstein, Ganguli (2016), "Exponential expressivity in deep
  neural networks through transient chaos", NeurIPS.
  Schoenholz, Gilmer, Ganguli, Sohl-Dickstein (2017), "Deep Information Propagation", ICLR.

Setting: h^l = W^l phi(h^{l-1}) + b^l with W_ij ~ (0, sigma_w^2 / fan_in), b_i ~ (0, sigma_b^2),
width -> infinity, z ~ N(0, 1):

  length map (Poole eq. 3)   q^l = sigma_w^2 E[phi(sqrt(q^{l-1}) z)^2] + sigma_b^2,  fixed point q*
  chi_1 (Poole eq. 7)        chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]
                             (slope of the correlation map at c = 1, and the per-layer growth of
                             the gradient variance going backward, Schoenholz sec. 4)
  correlation map (Poole eq. 5)
                             c^l = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*,
                             u1 = sqrt(q*) z1, u2 = sqrt(q*) (c^{l-1} z1 + sqrt(1 - c^{l-1}^2) z2)
  chi_c (Schoenholz sec. 3)  chi_c = sigma_w^2 E[phi'(u1) phi'(u2)] at the stable fixed point c*;
                             ordered phase (chi_1 < 1): c* = 1 and chi_c = chi_1; chaotic phase
                             (chi_1 > 1): c* < 1 found by iterating the correlation map from 0
  depth scales (Schoenholz sec. 3)
                             xi_q = -1 / ln(chi_1 + sigma_w^2 E[phi''(sqrt(q*) z) phi(sqrt(q*) z)])
                             xi_c = -1 / ln(chi_c)   (inf at criticality, chi_c = 1)

Expectations use Gauss-Hermite quadrature (even order, so ReLU's kink at 0 is integrated
exactly by symmetry) on any elementwise activation; phi' and phi'' come from autograd.
``closed_form`` gives q* and chi_1 for relu and linear as a cross-check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from scipy.optimize import brentq
from torch import nn

from initlab.diagnostics.probe import fans, weight_layers
from initlab.models.activations import activation_name as _act_name
from initlab.models.activations import make_activation

Activation = str | nn.Module | Callable[[torch.Tensor], torch.Tensor]
Q_MAX = 1e12  # q beyond this counts as diverged
Q_MIN = 1e-200  # the expectations at q* = 0 are taken here (their limit q -> 0+)


@lru_cache(maxsize=4)
def _nodes(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, w = np.polynomial.hermite_e.hermegauss(n)  # weight exp(-x^2 / 2)
    return torch.from_numpy(x), torch.from_numpy(w / math.sqrt(2 * math.pi))


def _phi(activation: Activation) -> Callable[[torch.Tensor], torch.Tensor]:
    return make_activation(activation) if isinstance(activation, str) else activation


def _derivatives(phi: Callable, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """phi(x), phi'(x), phi''(x) elementwise (float64, via autograd)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = phi(x)
        (d1,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        d2 = None
        if d1.requires_grad:
            (d2,) = torch.autograd.grad(d1.sum(), x, allow_unused=True)
    d2 = torch.zeros_like(x) if d2 is None else d2
    return y.detach(), d1.detach(), d2.detach()


def _gauss(phi: Callable, q: float, n: int = 100) -> tuple[float, float, float]:
    """E[phi^2], E[phi'^2], E[phi'' phi] at sqrt(q) z, z ~ N(0, 1)."""
    x, w = _nodes(n)
    y, d1, d2 = _derivatives(phi, math.sqrt(q) * x)
    return (w @ y.square()).item(), (w @ d1.square()).item(), (w @ (d2 * y)).item()


def _second_moment(phi: Callable, q: float, n: int = 100) -> float:
    """E[phi(sqrt(q) z)^2] (``_gauss``'s first value, without the derivatives: the length
    map's iteration needs only this, hundreds of times near a marginal fixed point)."""
    x, w = _nodes(n)
    with torch.no_grad():
        return (w @ phi(math.sqrt(q) * x).square()).item()


def length_map(q: float, activation: Activation, sigma_w2: float, sigma_b2: float) -> float:
    """One step of the length map q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 (Poole eq. 3)."""
    return sigma_w2 * _second_moment(_phi(activation), q) + sigma_b2


def q_fixed_point(
    activation: Activation,
    sigma_w2: float,
    sigma_b2: float,
    q0: float = 1.0,
    max_iter: int = 100,
    tol: float = 1e-12,
) -> tuple[float, bool]:
    """(q*, converged) by iterating the length map from q0; (inf, False) if q diverges.

    When iteration is slow (near a marginal fixed point) the root of map(q) - q ahead of the
    last iterate is bracketed and solved with Brent's method.
    """

    phi = _phi(activation)

    def f(q: float) -> float:
        return length_map(q, phi, sigma_w2, sigma_b2) - q

    q = q0
    for _ in range(max_iter):
        q_new = q + f(q)
        if not math.isfinite(q_new) or q_new > Q_MAX:
            return math.inf, False
        if abs(q_new - q) <= tol * max(1.0, q):
            return q_new, True
        q_prev, q = q, q_new
    if q < q_prev:  # decreasing towards a root in [0, q]: f(0) = map(0) >= 0 > f(q)
        return brentq(f, 0.0, q), True
    hi = 2 * q
    while hi < Q_MAX:  # increasing: find a point where the map falls below the diagonal
        if f(hi) < 0:
            return brentq(f, q, hi), True
        hi *= 2
    return math.inf, False


def _correlation_fixed_point(
    phi: Callable, sigma_w2: float, sigma_b2: float, q: float, n: int = 48
) -> tuple[float, float]:
    """(c*, chi_c) in the chaotic phase: the root of map(c) - c in [0, 1) (Poole eq. 5).

    There map(0) >= 0 (sigma_w^2 E[phi]^2 + sigma_b^2 over q) and map(c) < c just below 1
    (the slope chi_1 > 1 at c = 1), so Brent's method brackets the stable fixed point.
    q12(1) stands in for q* so that the quadrature keeps c = 1 an exact fixed point.
    """
    x, w = _nodes(n)
    z1, z2 = x[:, None], x[None, :]
    w2 = w[:, None] * w[None, :]
    y1, d1, _ = _derivatives(phi, math.sqrt(q) * z1.expand(n, n))

    def second(c: float) -> tuple[torch.Tensor, torch.Tensor]:
        return _derivatives(phi, math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2))[:2]

    def q12(c: float) -> float:
        return sigma_w2 * (w2 * y1 * second(c)[0]).sum().item() + sigma_b2

    q11 = q12(1.0)  # = q* up to quadrature error; same rule so that map(1) = 1 exactly

    def f(c: float) -> float:
        return q12(c) / q11 - c

    c = 0.0 if f(0.0) <= 0 else brentq(f, 0.0, 1 - 1e-6, xtol=1e-12)
    return c, sigma_w2 * (w2 * d1 * second(c)[1]).sum().item()


def _depth(chi: float) -> float:
    return -1.0 / math.log(chi) if 0 < chi < 1 else math.inf


def _q_and_chi_1(phi: Callable, sigma_w2: float, sigma_b2: float) -> tuple:
    q, converged = q_fixed_point(phi, sigma_w2, sigma_b2)
    # at q* = 0 the expectations are their limits q -> 0+ (phi' of a point mass at 0 is
    # not the slope the signal sees: relu'(0) = 0 would give chi_1 = 0 instead of
    # sigma_w^2 / 2 for relu without bias and sigma_w^2 < 2)
    _, e_d1sq, e_phi_d2 = _gauss(phi, max(q, Q_MIN) if converged else Q_MAX)
    return q, converged, sigma_w2 * e_d1sq, e_phi_d2


def meanfield(activation: Activation, sigma_w2: float, sigma_b2: float = 0.0) -> dict:
    """Mean-field quantities of an MLP (formulas in the module docstring).

    Returns ``activation``, ``sigma_w2``, ``sigma_b2``, ``q_star`` (inf if the length map
    diverges, e.g. relu with sigma_w^2 > 2), ``converged``, ``chi_1`` (at q*, or at the last
    iterate's scale when q diverges: exact for scale-free relu/linear), ``xi_q``, ``c_star``,
    ``chi_c``, ``xi_c`` (NaN where q* is infinite, except chi_1).
    """
    phi = _phi(activation)
    name = activation if isinstance(activation, str) else _act_name(phi) or repr(phi)
    q, converged, chi_1, e_phi_d2 = _q_and_chi_1(phi, sigma_w2, sigma_b2)
    out = {"activation": name, "sigma_w2": float(sigma_w2), "sigma_b2": float(sigma_b2)}
    out.update(q_star=q, converged=converged, chi_1=chi_1)
    if not converged:
        return out | {"xi_q": math.nan, "c_star": math.nan, "chi_c": math.nan, "xi_c": math.nan}
    c_star, chi_c = 1.0, chi_1
    if chi_1 > 1 and q > 0:
        c_star, chi_c = _correlation_fixed_point(phi, sigma_w2, sigma_b2, q)
    return out | {
        "xi_q": _depth(chi_1 + sigma_w2 * e_phi_d2),
        "c_star": c_star,
        "chi_c": chi_c,
        "xi_c": _depth(chi_c),
    }


def closed_form(activation: str, sigma_w2: float, sigma_b2: float = 0.0) -> dict[str, float]:
    """q* and chi_1 in closed form: relu E[phi^2] = q/2, E[phi'^2] = 1/2; linear: q, 1."""
    k = {"relu": 0.5, "linear": 1.0}[activation]
    slope = sigma_w2 * k  # the length map is q -> slope * q + sigma_b^2
    if slope < 1:
        q = sigma_b2 / (1 - slope)
    else:
        q = 1.0 if (slope == 1 and sigma_b2 == 0) else math.inf  # marginal: any q is fixed
    return {"q_star": q, "chi_1": slope}


def critical_sigma_w2(
    activation: Activation, sigma_b2: float, lo: float = 0.5, hi: float = 4.0
) -> float:
    """sigma_w^2 on the order-to-chaos transition (chi_1 = 1) for a given sigma_b^2."""
    phi = _phi(activation)
    return brentq(lambda s: _q_and_chi_1(phi, s, sigma_b2)[2] - 1.0, lo, hi, xtol=1e-6)


def meanfield_from_model(model: nn.Module, activation_name: str | None = None) -> dict:
    """``meanfield`` with sigma_w^2, sigma_b^2 read from an initialized model.

    Hidden layers = all weight layers but the last (the output layer often has its own
    init).  sigma_w^2 = mean over them of Var(W) * fan_in; sigma_b^2 = mean over them of
    mean(b^2) (= Var(b) for zero-mean biases; a constant bias c adds c^2 to q exactly as a
    random one of variance c^2 does; 0 without bias).  The activation is ``activation_name``
    or, if None, the first activation module found in the model (linear if none).
    """
    layers = [m for _, m in weight_layers(model)]
    if not layers:
        raise ValueError("model has no weight layer (nn.Linear / nn.ConvNd)")
    hidden = layers[:-1] or layers
    sw2 = [m.weight.detach().double().var(correction=0).item() * fans(m.weight)[0] for m in hidden]
    sb2 = [
        0.0 if m.bias is None else m.bias.detach().double().square().mean().item() for m in hidden
    ]
    act: Activation | None = activation_name
    if act is None:
        found = [m for m in model.modules() if _act_name(m) not in (None, "linear")]
        act = found[0] if found else "linear"
    return meanfield(act, float(np.mean(sw2)), float(np.mean(sb2)))

"""Tensor-level initializers in the style of ``torch.nn.init``.

Every function fills ``tensor`` in place under ``torch.no_grad()``, returns it, and draws its
randomness only from ``generator`` (a CPU ``torch.Generator``; None uses a fresh
non-deterministically seeded one, never the global RNG). Samples are drawn on the CPU and
copied to the tensor's device, so a seed gives the same numbers on every device.
A zero-element tensor (e.g. the weight of ``nn.Linear(0, 5)``, whose fan_in is 0) is
returned unchanged with a warning, as ``torch.nn.init`` does: there is nothing to fill and
its fan may be 0. Invalid arguments are still refused first.
"""

from __future__ import annotations

import math
import warnings

import torch

from initlab.initializers.fans import Fans, tensor_fans

DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
MODES = ("fan_avg", "fan_in", "fan_out")

#: Standard deviation of a standard normal truncated to [-2, 2]. Sampling the underlying
#: normal with ``target_std / TRUNC_STD`` gives a truncated normal of std ``target_std``.
TRUNC_STD = 0.87962566103423978


def _gen(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    return generator


def _dtype(tensor: torch.Tensor) -> torch.dtype:
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def skip_empty(tensor: torch.Tensor, name: str, stacklevel: int = 3) -> bool:
    """True (with a warning) when ``tensor`` has no elements: initializing it is a no-op."""
    if tensor.numel():
        return False
    warnings.warn(f"{name}: tensor of shape {tuple(tensor.shape)} has zero elements; "
                  "initializing it is a no-op, left unchanged", UserWarning,
                  stacklevel=stacklevel)
    return True


def _fill(tensor: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        tensor.copy_(values.reshape(tensor.shape))
    return tensor


def check_choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not allowed; allowed: {', '.join(allowed)}")


def normal_(
    tensor: torch.Tensor, std: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``N(0, std^2)``."""
    if skip_empty(tensor, "normal_"):
        return tensor
    values = torch.randn(tensor.shape, generator=_gen(generator), dtype=_dtype(tensor))
    return _fill(tensor, values * std)


def uniform_(
    tensor: torch.Tensor, bound: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``U(-bound, bound)``."""
    if skip_empty(tensor, "uniform_"):
        return tensor
    values = torch.rand(tensor.shape, generator=_gen(generator), dtype=_dtype(tensor))
    return _fill(tensor, (2.0 * values - 1.0) * bound)


def truncated_normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``N(mean, std^2)`` truncated to ``[a, b]`` (absolute bounds, as in
    ``torch.nn.init.trunc_normal_``), sampled exactly by the inverse CDF in float64.
    ``std`` is the std of the underlying normal, not of the result."""
    if skip_empty(tensor, "truncated_normal_"):
        return tensor
    if std <= 0:
        return _fill(tensor, torch.full(tensor.shape, float(mean)))

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf((x - mean) / (std * math.sqrt(2.0))))

    lo, hi = cdf(a), cdf(b)
    u = torch.rand(tensor.shape, generator=_gen(generator), dtype=torch.float64)
    p = (lo + u * (hi - lo)).clamp(1e-16, 1.0 - 1e-16)
    values = mean + std * math.sqrt(2.0) * torch.erfinv(2.0 * p - 1.0)
    return _fill(tensor, values.clamp(a, b))


def sample_(
    tensor: torch.Tensor,
    std: float,
    distribution: str = "normal",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, float | None]:
    """Fill with a zero-mean ``distribution`` whose standard deviation is ``std``.

    ``uniform`` uses bound ``std * sqrt(3)``; ``truncated_normal`` truncates at 2 standard
    deviations of the underlying normal, whose std is ``std / TRUNC_STD``. Returns the
    tensor and the bound (None for ``normal``).
    """
    check_choice("init.distribution", distribution, DISTRIBUTIONS)
    if distribution == "normal":
        return normal_(tensor, std, generator), None
    if distribution == "uniform":
        bound = std * math.sqrt(3.0)
        return uniform_(tensor, bound, generator), bound
    under = std / TRUNC_STD
    return truncated_normal_(tensor, 0.0, under, -2.0 * under, 2.0 * under, generator), 2 * under


def variance_scaling_(
    tensor: torch.Tensor,
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "normal",
    generator: torch.Generator | None = None,
    *,
    fans: Fans | None = None,
) -> torch.Tensor:
    """Zero-mean weights with ``Var = scale / fan`` (``fan`` chosen by ``mode``): the common
    form of LeCun, Glorot and He initialization. ``fans`` overrides the fans computed from
    the tensor layout (e.g. for grouped or transposed convolutions)."""
    return _variance_scaling(tensor, scale, mode, distribution, generator, fans,
                             "variance_scaling_")


def _variance_scaling(tensor: torch.Tensor, scale: float, mode: str, distribution: str,
                      generator: torch.Generator | None, fans: Fans | None,
                      name: str) -> torch.Tensor:
    check_choice("init.mode", mode, MODES)
    check_choice("init.distribution", distribution, DISTRIBUTIONS)
    if scale <= 0:
        raise ValueError(f"init.scale={scale!r} is not allowed; allowed: a number > 0")
    fans = fans or tensor_fans(tensor)
    if skip_empty(tensor, name, stacklevel=4):  # its fan may be 0: no std to compute
        return tensor
    fan = fans.select(mode)
    if fan <= 0:
        raise ValueError(f"{name}: init.mode={mode} selects a fan of {fan:g} ({fans}); "
                         "allowed: fans > 0")
    return sample_(tensor, math.sqrt(scale / fan), distribution, generator)[0]


def xavier_(
    tensor: torch.Tensor,
    gain: float = 1.0,
    distribution: str = "uniform",
    mode: str = "fan_avg",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Glorot & Bengio (2010): ``Var = gain^2 * 2 / (fan_in + fan_out)``."""
    return _variance_scaling(tensor, gain * gain, mode, distribution, generator, None,
                             "xavier_")


def he_(
    tensor: torch.Tensor,
    gain: float = math.sqrt(2.0),
    distribution: str = "normal",
    mode: str = "fan_in",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He et al. (2015): ``Var = gain^2 / fan`` with ``gain = sqrt(2)`` for ReLU."""
    return _variance_scaling(tensor, gain * gain, mode, distribution, generator, None, "he_")


def lecun_(
    tensor: torch.Tensor,
    gain: float = 1.0,
    distribution: str = "normal",
    mode: str = "fan_in",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """LeCun et al. (1998), Efficient BackProp: ``Var = gain^2 / fan_in``."""
    return _variance_scaling(tensor, gain * gain, mode, distribution, generator, None,
                             "lecun_")


def _orthogonal_matrix(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """A ``rows x cols`` matrix with orthonormal rows (wide) or columns (tall), from the QR
    decomposition of a Gaussian matrix with the signs of ``diag(R)`` folded into ``Q`` so
    that it is Haar-distributed."""
    tall = rows >= cols
    gauss = torch.randn(
        (rows, cols) if tall else (cols, rows), generator=generator, dtype=torch.float64
    )
    q, r = torch.linalg.qr(gauss)
    signs = torch.sign(torch.diagonal(r))
    q = q * torch.where(signs == 0, 1.0, signs)
    return q if tall else q.T


def orthogonal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Saxe et al. (2014): a (semi-)orthogonal matrix times ``gain``; the tensor is viewed
    as ``(size(0), numel / size(0))`` so ``W W^T = gain^2 I`` (wide) or ``W^T W = gain^2 I``
    (tall)."""
    if tensor.dim() < 2:
        raise ValueError(
            f"orthogonal needs a tensor with at least 2 dims, got {tuple(tensor.shape)}"
        )
    if skip_empty(tensor, "orthogonal_"):
        return tensor
    rows = tensor.shape[0]
    matrix = _orthogonal_matrix(rows, tensor.numel() // rows, _gen(generator))
    return _fill(tensor, (gain * matrix).to(_dtype(tensor)))


def centre_tap(kernel_size: int) -> int:
    """The tap a delta kernel puts its weight on: ``(kernel_size - 1) // 2``, the middle of
    an odd kernel and, for an even one, the tap that ``padding='same'`` aligns with the
    output position (PyTorch pads ``(k - 1) // 2`` before and the rest after; TF and JAX
    place their delta-orthogonal centre there too). ``k // 2`` would shift the output one
    position per even dimension."""
    return (kernel_size - 1) // 2


def delta_orthogonal_(
    tensor: torch.Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    transposed: bool = False,
) -> torch.Tensor:
    """Xiao et al. (2018), "Dynamical isometry and a mean field theory of CNNs",
    delta-orthogonal: the centre tap (index ``centre_tap(k) = (k - 1) // 2`` in every
    spatial dim) is an orthogonal ``out x in`` matrix times ``gain``, all other taps are
    zero, so the convolution is norm-preserving at every position. Needs
    ``out_channels >= in_channels``. ``transposed`` for ConvTranspose weights
    ``(in, out, *k)``. A 2-D (Linear) weight gets plain ``orthogonal_`` of any shape.
    For an even ``k`` the tap is the one ``padding='same'`` centres (no spatial shift)."""
    if tensor.dim() < 2:
        raise ValueError(
            f"delta_orthogonal needs a weight with at least 2 dims, got {tuple(tensor.shape)}"
        )
    if skip_empty(tensor, "delta_orthogonal_"):
        return tensor
    if tensor.dim() == 2:
        return orthogonal_(tensor, gain, generator)
    n_out, n_in = (tensor.shape[1], tensor.shape[0]) if transposed else tensor.shape[:2]
    if n_out < n_in:
        raise ValueError(
            f"delta_orthogonal needs out_channels >= in_channels (per group), got "
            f"out_channels={n_out} < in_channels={n_in}"
        )
    centre = (slice(None), slice(None), *(centre_tap(k) for k in tensor.shape[2:]))
    matrix = gain * _orthogonal_matrix(n_out, n_in, _gen(generator))
    values = torch.zeros(tensor.shape, dtype=torch.float64)
    values[centre] = matrix.T if transposed else matrix
    return _fill(tensor, values.to(_dtype(tensor)))


def identity_(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Identity map times ``gain``: ``eye`` on the leading square block of a 2-D tensor
    (Le et al. 2015 use it for recurrent weights); for a convolution weight the Dirac delta
    at the centre tap (``centre_tap(k) = (k - 1) // 2``, the one ``padding='same'``
    centres for an even ``k`` too) linking channel ``i`` to channel ``i``."""
    if tensor.dim() < 2:
        raise ValueError(f"identity needs a tensor with at least 2 dims, got {tuple(tensor.shape)}")
    if skip_empty(tensor, "identity_"):
        return tensor
    values = torch.zeros(tensor.shape, dtype=_dtype(tensor))
    n = min(tensor.shape[0], tensor.shape[1])
    index = torch.arange(n)
    centre = tuple(centre_tap(k) for k in tensor.shape[2:])
    values[(index, index, *centre)] = gain
    return _fill(tensor, values)


def sparse_(
    tensor: torch.Tensor,
    sparsity: float | None = None,
    num_nonzero: int | None = 15,
    std: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Martens (2010) sparse initialization: each output unit (row; conv weights are viewed
    as ``(out, in * k)``) gets exactly ``num_nonzero`` nonzero incoming weights drawn from
    ``N(0, std^2)`` at random positions, the rest zero. If ``sparsity`` is given it takes
    precedence: ``round(sparsity * fan_in)`` zeros per unit. ``num_nonzero`` is capped at
    ``fan_in``."""
    if tensor.dim() < 2:
        raise ValueError(f"sparse needs a tensor with at least 2 dims, got {tuple(tensor.shape)}")
    if sparsity is not None and not 0.0 <= sparsity < 1.0:
        raise ValueError(f"init.sparsity={sparsity!r} is not allowed; allowed: 0 <= x < 1")
    if sparsity is None and (num_nonzero is None or num_nonzero < 1):
        raise ValueError(f"init.num_nonzero={num_nonzero!r} is not allowed; allowed: int >= 1")
    if skip_empty(tensor, "sparse_"):
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    if sparsity is not None:
        keep = cols - int(math.floor(sparsity * cols + 0.5))
        if keep < 1:  # an all-zero unit is not a sparse init
            raise ValueError(f"init.sparsity={sparsity!r} leaves no nonzero weight in a unit "
                             f"with {cols} inputs; allowed: 0 <= x < {1 - 0.5 / cols:.6g}")
    else:
        keep = min(int(num_nonzero), cols)
    gen = _gen(generator)
    positions = torch.rand((rows, cols), generator=gen).argsort(dim=1)[:, :keep]
    weights = torch.randn((rows, keep), generator=gen, dtype=_dtype(tensor)) * std
    values = torch.zeros((rows, cols), dtype=_dtype(tensor))
    values.scatter_(1, positions, weights)
    return _fill(tensor, values)

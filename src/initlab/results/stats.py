"""Statistics over seeds: mean, std, Student-t confidence intervals and Welch's t-test.

Everything here works on plain numbers (NaN = missing, dropped before computing).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

SIGNIFICANCE = 0.05  # two-sided p-value threshold of the report's significance statements


def _clean(values: Iterable[float]) -> np.ndarray:
    """The finite values: NaN is missing, and an infinite metric is left out of the test
    as it is out of summary.csv's mean (it would make the test undefined)."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    return arr[np.isfinite(arr)]


def ci95_halfwidth(std: float, n: int) -> float:
    """Half-width of the 95 % confidence interval of a mean from ``n`` samples with
    sample standard deviation ``std`` (ddof=1): ``t_{0.975, n-1} * std / sqrt(n)``.

    NaN for ``n < 2`` (no spread can be estimated from one seed).
    """
    if n < 2 or std is None or math.isnan(std):
        return float("nan")
    return float(_st.t.ppf(0.975, n - 1) * std / math.sqrt(n))


def ci95_halfwidths(std: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Vectorized :func:`ci95_halfwidth` (NaN where ``n < 2``)."""
    std = np.asarray(std, dtype=float)
    n = np.asarray(n, dtype=float)
    out = np.full(std.shape, np.nan)
    ok = n >= 2
    if ok.any():
        out[ok] = _st.t.ppf(0.975, n[ok] - 1) * std[ok] / np.sqrt(n[ok])
    return out


@dataclass(frozen=True)
class Describe:
    n: int
    mean: float
    std: float  # sample std (ddof=1), NaN for n < 2
    ci95: float


def describe(values: Iterable[float]) -> Describe:
    """Count, mean, sample std and 95 % CI half-width of the non-NaN values."""
    arr = _clean(values)
    n = int(arr.size)
    mean = float(arr.mean()) if n else float("nan")
    std = float(arr.std(ddof=1)) if n >= 2 else float("nan")
    return Describe(n, mean, std, ci95_halfwidth(std, n))


@dataclass(frozen=True)
class Comparison:
    """Welch's t-test of ``a`` against ``b``; ``p`` is NaN when it cannot be computed."""

    n_a: int
    n_b: int
    t: float
    p: float
    reason: str = ""  # why there is no p-value ("a single seed", ...)

    @property
    def significant(self) -> bool | None:
        """True/False at p < ``SIGNIFICANCE``; None when there is no p-value."""
        return None if math.isnan(self.p) else bool(self.p < SIGNIFICANCE)


def welch(a: Iterable[float], b: Iterable[float]) -> Comparison:
    """Two-sided Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``) on the
    finite values.  Needs at least two values on each side; with zero spread on both
    sides the test is defined only when the means differ (then p = 0)."""
    x, y = _clean(a), _clean(b)
    nan = float("nan")
    if x.size < 2 or y.size < 2:
        return Comparison(int(x.size), int(y.size), nan, nan, "a single seed")
    # no spread: all values equal, compared as they are (x.std() == 0 is not exact: the
    # mean of [0.1, 0.1, 0.1] is 0.1 + 1 ulp, so its std is 1e-17 and the t-test then runs
    # on rounding noise)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        if x[0] == y[0]:
            return Comparison(int(x.size), int(y.size), nan, nan, "identical values")
        return Comparison(int(x.size), int(y.size), math.copysign(math.inf, x[0] - y[0]), 0.0)
    res = _st.ttest_ind(x, y, equal_var=False)
    return Comparison(int(x.size), int(y.size), float(res.statistic), float(res.pvalue))


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with its 95 % CI and Welch's two-sided p-value (NaN where
    they cannot be computed; ``reason`` says why)."""

    n_a: int
    n_b: int
    effect: float
    ci95: float  # half-width
    p: float
    reason: str = ""


def mean_difference(a: Iterable[float], b: Iterable[float]) -> Difference:
    """Welch (1947), "The generalization of 'Student's' problem when several different
    population variances are involved": the difference of two means with standard error
    ``se = sqrt(s_a^2/n_a + s_b^2/n_b)``, Welch-Satterthwaite degrees of freedom
    ``df = se^4 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))``, 95 % CI half-width
    ``t_{0.975, df} * se`` and the p-value of :func:`welch`."""
    x, y = _clean(a), _clean(b)
    nan = float("nan")
    effect = float(x.mean() - y.mean()) if x.size and y.size else nan
    cmp = welch(x, y)
    if x.size < 2 or y.size < 2:
        return Difference(int(x.size), int(y.size), effect, nan, nan, cmp.reason)
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(int(x.size), int(y.size), effect, 0.0, cmp.p, cmp.reason)
    df = se**4 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    return Difference(int(x.size), int(y.size), effect, float(_st.t.ppf(0.975, df) * se),
                      cmp.p, cmp.reason)

"""Statistics of paired comparisons over seeds: effect with its confidence interval, power, seeds needed.

Runs of two variants with the same seed share the student's initialisation and batch order, so a variant
is compared with its method alone through the per-seed differences d_k (paired t over the matching seeds).
The minimum detectable effect (MDE) is the true mean difference a two-sided paired t-test at level alpha
detects with the given power when the differences spread as observed (noncentral t, exact).
"""

from __future__ import annotations

import math

import numpy as np


def mean_ci(values, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` confidence interval of the mean of ``values`` (t with n - 1 degrees of freedom); NaNs for
    fewer than 2 values, the point itself when they are all equal."""
    from scipy import stats

    v = np.asarray(values, float)
    if len(v) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return float(v.mean()) - half, float(v.mean()) + half


def paired_effect(a: dict, b: dict, level: float = 0.95) -> dict:
    """``a``, ``b``: seed -> value. The paired difference a - b over the seeds both have: n, mean, sd,
    its ``level`` confidence interval (t with n - 1 degrees of freedom) and the two-sided p-value."""
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    d = np.array([a[k] - b[k] for k in seeds], float)
    n = len(d)
    out = {"n": n, "mean": float(d.mean()) if n else math.nan, "sd": math.nan, "ci_low": math.nan,
           "ci_high": math.nan, "p": math.nan}
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    out["sd"] = sd
    if sd == 0:   # identical differences: the interval is the point, the test is degenerate
        out.update(ci_low=out["mean"], ci_high=out["mean"], p=1.0 if out["mean"] == 0 else 0.0)
        return out
    lo, hi = mean_ci(d, level)
    out.update(ci_low=lo, ci_high=hi, p=float(stats.ttest_1samp(d, 0.0).pvalue))
    return out


def paired_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test with ``n`` pairs for a true mean difference ``effect``."""
    from scipy import stats

    if n < 2 or not sd > 0:
        return math.nan
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) * math.sqrt(n) / sd
    power = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    if math.isfinite(power):
        return power
    return _nct_two_sided(crit, df, nc)


def _nct_two_sided(crit: float, df: int, nc: float) -> float:
    """P(|T| > crit) for T ~ noncentral t(df, nc) by integrating over the chi-square: T = (Z + nc) / sqrt(V/df),
    so P(T > c) = E_V[P(Z > c sqrt(V/df) - nc)]. scipy's nct returns NaN for a large noncentrality at few
    degrees of freedom (e.g. nc 18, df 2); this stays finite there."""
    from scipy import integrate, stats

    def tail(v):
        s = crit * math.sqrt(v / df)
        return (stats.norm.sf(s - nc) + stats.norm.cdf(-s - nc)) * stats.chi2.pdf(v, df)

    val, _ = integrate.quad(tail, 0.0, math.inf, limit=200)
    return float(min(max(val, 0.0), 1.0))


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest |mean difference| detected with ``power`` by the paired t-test over ``n`` pairs whose
    differences have standard deviation ``sd`` (NaN for n < 2 or an undefined spread; 0 for sd 0)."""
    from scipy.optimize import brentq

    if n < 2 or not np.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    hi = sd
    while paired_power(hi, sd, n, alpha) < power:
        hi *= 2
    return float(brentq(lambda e: paired_power(e, sd, n, alpha) - power, 0.0, hi, xtol=1e-12 * sd))


def seeds_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 1000):
    """The fewest pairs (>= 2) whose MDE is <= |effect| at the given spread; None beyond ``max_n``."""
    if not np.isfinite(sd) or not np.isfinite(effect):
        return None
    if sd == 0:
        return 2
    for n in range(2, max_n + 1):
        if paired_power(effect, sd, n, alpha) >= power:
            return n
    return None

"""Paired-comparison statistics against scipy and against simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from vem.stats import min_detectable_effect, paired_effect, paired_power, seeds_needed


def test_paired_effect_equals_scipys_paired_t():
    a = {0: 8.36, 1: 7.38, 2: 8.35, 5: 9.0}
    b = {0: 8.75, 1: 7.74, 2: 8.37, 7: 1.0}        # seeds 5 and 7 have no partner
    e = paired_effect(a, b)
    ref = stats.ttest_rel([8.36, 7.38, 8.35], [8.75, 7.74, 8.37])
    ci = ref.confidence_interval(0.95)
    assert e["n"] == 3
    assert e["mean"] == pytest.approx(np.mean([-0.39, -0.36, -0.02]))
    assert (e["ci_low"], e["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert e["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert paired_effect(a, b, level=0.9)["ci_high"] < e["ci_high"]
    one = paired_effect({0: 1.0}, {0: 2.0})
    assert one["n"] == 1 and one["mean"] == -1.0 and math.isnan(one["ci_low"]) and math.isnan(one["p"])
    same = paired_effect({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0})
    assert same["ci_low"] == same["ci_high"] == 1.0 and same["p"] == 0.0


@pytest.mark.parametrize("n,sd", [(3, 0.4), (5, 1.0)])
def test_min_detectable_effect_has_the_power_it_claims(n, sd):
    """Simulated paired t-tests at the returned effect reject in 80 % of the draws (independent of the
    noncentral-t formula)."""
    mde = min_detectable_effect(sd, n)
    assert paired_power(mde, sd, n) == pytest.approx(0.8, abs=1e-9)
    rng = np.random.default_rng(0)
    d = rng.normal(mde, sd, size=(200_000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    rate = np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1))
    assert rate == pytest.approx(0.8, abs=0.005)


def test_min_detectable_effect_limits():
    # many pairs: the normal approximation (z_0.975 + z_0.8) sd / sqrt(n)
    assert min_detectable_effect(1.0, 400) == pytest.approx((1.959964 + 0.841621) / 20, rel=5e-3)
    assert min_detectable_effect(0.0, 3) == 0.0
    assert math.isnan(min_detectable_effect(1.0, 1)) and math.isnan(min_detectable_effect(float("nan"), 3))
    assert min_detectable_effect(1.0, 3) > min_detectable_effect(1.0, 6) > min_detectable_effect(0.5, 6)


def test_seeds_needed_is_the_smallest_sufficient_count():
    n = seeds_needed(0.5, 1.0)
    assert paired_power(0.5, 1.0, n) >= 0.8 > paired_power(0.5, 1.0, n - 1)
    assert seeds_needed(0.5, 0.0) == 2 and seeds_needed(1e-6, 1.0, max_n=50) is None


def test_power_stays_finite_and_monotone_where_scipys_noncentral_t_gives_nan():
    """scipy's nct returns NaN at a large noncentrality with few degrees of freedom (nc ~18, df 2): the power
    there comes from integrating over the chi-square, which equals scipy wherever scipy is finite."""
    from scipy import stats as st

    from vem.stats import _nct_two_sided, min_detectable_effect, paired_power, seeds_needed

    for df, nc in ((1, 2.0), (2, 1.5), (5, 3.0), (10, 0.5)):
        c = st.t.ppf(0.975, df)
        assert _nct_two_sided(c, df, nc) == pytest.approx(st.nct.sf(c, df, nc) + st.nct.cdf(-c, df, nc), abs=1e-9)
    sd = 0.389
    for n in (2, 3, 4, 6):
        p = [paired_power(e, sd, n) for e in np.linspace(0.1, 8.0, 40)]
        assert all(np.isfinite(p)) and all(np.diff(p) >= -1e-9), n
    # the seeds a difference needs agree with the MDE: 3 seeds resolve anything above MDE(3) (4.02 here)
    assert min_detectable_effect(sd, 3) < 4.02 and seeds_needed(4.02, sd) <= 3
    assert seeds_needed(min_detectable_effect(sd, 5) * 1.001, sd) == 5

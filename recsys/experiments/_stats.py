"""The statistics of an online experiment: per-arm estimates with 95 % intervals and a test of the difference.

Why these tests (and why not one test for everything): the unit that is randomised is the *customer*
(or an anonymous session), so every test treats customers as independent, never impressions or orders.

* **conversion** (share of customers with at least one attributed purchase) — a proportion per customer:
  two-proportion z-test with the pooled standard error; intervals: Wilson per arm, Newcombe-free
  unpooled Wald for the difference (large samples only: see ``enough``).
* **revenue per customer** — a mean of a heavy-tailed, mostly-zero per-customer value: Welch's t-test
  (unequal variances), Welch–Satterthwaite degrees of freedom for the interval.
* **CTR** (clicks ÷ impressions) and **AOV** (revenue ÷ orders) — ratios of per-customer sums.  A
  customer's impressions are correlated (one person, one taste), so a two-proportion test over impressions
  would call far too many null experiments significant.  The delta method gives the ratio's variance from
  the per-customer sums (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics"); the
  difference is then a z-test.

"Too small to call": a test is only read when every arm has at least ``min_units`` customers and at
least ``min_events`` of the counted events (conversions, purchasers, clicks, orders) — the normal
approximations behind all four tests are poor below that, and an experiment stopped at 30 customers
is an anecdote.  Such a comparison says so (``enough = False``, ``verdict = "too small to call"``) and
is never called significant, whatever its p-value.

Everything here is pure numpy/scipy on arrays: no store, no polars, so it is cheap to test by
simulation (tests/experiments/test_stats.py plants lifts and runs null experiments).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

__all__ = [
    "Comparison",
    "Estimate",
    "METRIC_TESTS",
    "Metric",
    "compare_means",
    "compare_proportions",
    "compare_ratios",
    "mean_estimate",
    "proportion_estimate",
    "ratio_estimate",
]

Metric = Literal["ctr", "conversion", "revenue_per_customer", "aov"]
Verdict = Literal["treatment better", "control better", "no significant difference", "too small to call"]

#: The test behind each metric, as printed in every read-out.
METRIC_TESTS: dict[str, str] = {
    "conversion": "two-proportion z-test (pooled SE); Wilson intervals",
    "revenue_per_customer": "Welch t-test (unequal variances)",
    "ctr": "delta-method z-test on a ratio of per-customer sums",
    "aov": "delta-method z-test on a ratio of per-customer sums",
}


@dataclass(frozen=True)
class Estimate:
    """One arm's value of a metric and its ``1 - alpha`` interval (``None`` when undefined)."""

    value: float | None
    low: float | None
    high: float | None
    units: int  #: customers (the randomised unit)
    events: int  #: the counted events behind it (conversions, purchasers, clicks, orders)


@dataclass(frozen=True)
class Comparison:
    """Treatment against control for one metric."""

    metric: str
    test: str
    control: Estimate
    treatment: Estimate
    diff: float | None  #: treatment - control
    low: float | None  #: interval of the difference
    high: float | None
    relative: float | None  #: treatment / control - 1
    statistic: float | None
    p_value: float | None
    alpha: float
    enough: bool
    why_not: str | None = None  #: why the sample is too small to call

    @property
    def significant(self) -> bool:
        """True when the sample is large enough and ``p_value < alpha``."""
        return self.enough and self.p_value is not None and self.p_value < self.alpha

    @property
    def verdict(self) -> Verdict:
        """The comparison in words: too small to call, no significant difference, or which arm is better."""
        if not self.enough:
            return "too small to call"
        if not self.significant or self.diff is None:
            return "no significant difference"
        return "treatment better" if self.diff > 0 else "control better"


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1.0 - alpha / 2.0))


def _check(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"The 'alpha' parameter must be a float in (0, 1). Got {alpha!r} instead.")


def _enough(units: tuple[int, int], events: tuple[int, int], *, min_units: int,
            min_events: int, what: str, units_are: str = "customers") -> str | None:
    """Why the sample is too small to call, or None."""
    if min(units) < min_units:
        return f"needs ≥ {min_units} {units_are} per arm (has {units[0]} and {units[1]})"
    if min(events) < min_events:
        return f"needs ≥ {min_events} {what} per arm (has {events[0]} and {events[1]})"
    return None


def _p_two_sided_normal(z: float) -> float:
    return float(2.0 * stats.norm.sf(abs(z)))


# ----------------------------------------------------------------- proportions
def proportion_estimate(successes: int, n: int, *, alpha: float = 0.05) -> Estimate:
    """Wilson score interval: honest near 0 and 1 and for small n, unlike the Wald interval."""
    _check(alpha)
    if n <= 0:
        return Estimate(None, None, None, n, successes)
    z = _z(alpha)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n, successes)


def compare_proportions(x_c: int, n_c: int, x_t: int, n_t: int, *, alpha: float = 0.05, min_units: int = 100,
                        min_events: int = 10, metric: str = "conversion") -> Comparison:
    """Two-proportion z-test: pooled SE for the test (exact under the null), unpooled for the interval."""
    _check(alpha)
    c, t = proportion_estimate(x_c, n_c, alpha=alpha), proportion_estimate(x_t, n_t, alpha=alpha)
    why = _enough((n_c, n_t), (min(x_c, n_c - x_c), min(x_t, n_t - x_t)), min_units=min_units,
                  min_events=min_events, what="conversions (and non-conversions)")
    if n_c <= 0 or n_t <= 0:
        return Comparison(metric, METRIC_TESTS["conversion"], c, t, None, None, None, None, None, None, alpha,
                          False, why)
    pc, pt = x_c / n_c, x_t / n_t
    diff = pt - pc
    pooled = (x_c + x_t) / (n_c + n_t)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    z_stat = diff / se0 if se0 > 0 else 0.0
    se = math.sqrt(pc * (1 - pc) / n_c + pt * (1 - pt) / n_t)
    half = _z(alpha) * se
    return Comparison(metric, METRIC_TESTS["conversion"], c, t, diff, diff - half, diff + half,
                      pt / pc - 1.0 if pc > 0 else None, z_stat, _p_two_sided_normal(z_stat) if se0 > 0 else 1.0,
                      alpha, why is None, why)


# ----------------------------------------------------------------------- means
def mean_estimate(values: np.ndarray, *, alpha: float = 0.05) -> Estimate:
    """Student-t interval of a mean of per-customer values."""
    _check(alpha)
    v = np.asarray(values, dtype=np.float64)
    n = int(v.size)
    nonzero = int(np.count_nonzero(v))
    if n == 0:
        return Estimate(None, None, None, 0, 0)
    m = float(v.mean())
    if n < 2:
        return Estimate(m, None, None, n, nonzero)
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * float(v.std(ddof=1)) / math.sqrt(n)
    return Estimate(m, m - half, m + half, n, nonzero)


def compare_means(control: np.ndarray, treatment: np.ndarray, *, alpha: float = 0.05, min_units: int = 100,
                  min_events: int = 10, metric: str = "revenue_per_customer") -> Comparison:
    """Welch's t-test on per-customer values (``events`` = customers with a non-zero value)."""
    _check(alpha)
    a, b = np.asarray(control, dtype=np.float64), np.asarray(treatment, dtype=np.float64)
    c, t = mean_estimate(a, alpha=alpha), mean_estimate(b, alpha=alpha)
    why = _enough((a.size, b.size), (c.events, t.events), min_units=min_units, min_events=min_events,
                  what="customers with revenue")
    if a.size < 2 or b.size < 2:
        return Comparison(metric, METRIC_TESTS["revenue_per_customer"], c, t, None, None, None, None, None, None,
                          alpha, False, why)
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    diff = float(b.mean() - a.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return Comparison(metric, METRIC_TESTS["revenue_per_customer"], c, t, diff, diff, diff, None, None, 1.0,
                          alpha, why is None, why)
    df = (va + vb) ** 2 / ((va * va) / (a.size - 1) + (vb * vb) / (b.size - 1))
    t_stat = diff / se
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    rel = float(b.mean() / a.mean() - 1.0) if a.mean() > 0 else None
    return Comparison(metric, METRIC_TESTS["revenue_per_customer"], c, t, diff, diff - half, diff + half, rel,
                      t_stat, float(2.0 * stats.t.sf(abs(t_stat), df)), alpha, why is None, why)


# ---------------------------------------------------------------------- ratios
def _ratio_var(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio of sums and its delta-method variance, from per-customer numerators and denominators."""
    n = num.size
    md = float(den.mean())
    r = float(num.sum() / den.sum())
    if n < 2:
        return r, float("nan")
    cov = np.cov(num, den, ddof=1)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * md * md)
    return r, max(float(var), 0.0)


def ratio_estimate(num: np.ndarray, den: np.ndarray, *, alpha: float = 0.05) -> Estimate:
    """Ratio of per-customer sums (customers with ``den > 0`` only) with a delta-method normal interval."""
    _check(alpha)
    nu, de = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    keep = de > 0
    nu, de = nu[keep], de[keep]
    events = int(round(float(nu.sum()))) if nu.size else 0
    if nu.size == 0:
        return Estimate(None, None, None, 0, 0)
    r, var = _ratio_var(nu, de)
    if not math.isfinite(var):
        return Estimate(r, None, None, int(nu.size), events)
    half = _z(alpha) * math.sqrt(var)
    return Estimate(r, r - half, r + half, int(nu.size), events)


def compare_ratios(num_c: np.ndarray, den_c: np.ndarray, num_t: np.ndarray, den_t: np.ndarray, *,
                   alpha: float = 0.05, min_units: int = 100, min_events: int = 10, metric: str = "ctr",
                   events_are: str = "clicks") -> Comparison:
    """Delta-method z-test of the difference of two ratios of per-customer sums.

    ``events`` of an estimate is the numerator's total for CTR (clicks); for AOV pass the orders as
    the denominator and ``events_are="orders"``: then the denominator's total is what must be large.
    """
    _check(alpha)
    c, t = ratio_estimate(num_c, den_c, alpha=alpha), ratio_estimate(num_t, den_t, alpha=alpha)
    if events_are == "orders":
        ec = int(np.asarray(den_c, dtype=np.float64).sum())
        et = int(np.asarray(den_t, dtype=np.float64).sum())
    else:
        ec, et = c.events, t.events
    why = _enough((c.units, t.units), (ec, et), min_units=min_units, min_events=min_events, what=events_are,
                  units_are="customers with " + ("orders" if events_are == "orders" else "impressions"))
    test = METRIC_TESTS.get(metric, METRIC_TESTS["ctr"])
    if c.value is None or t.value is None or c.units < 2 or t.units < 2:
        return Comparison(metric, test, c, t, None, None, None, None, None, None, alpha, False, why or
                          f"needs {events_are} in both arms")
    keep_c, keep_t = np.asarray(den_c) > 0, np.asarray(den_t) > 0
    _, var_c = _ratio_var(np.asarray(num_c, np.float64)[keep_c], np.asarray(den_c, np.float64)[keep_c])
    _, var_t = _ratio_var(np.asarray(num_t, np.float64)[keep_t], np.asarray(den_t, np.float64)[keep_t])
    diff = t.value - c.value
    se = math.sqrt(var_c + var_t)
    if se == 0:
        return Comparison(metric, test, c, t, diff, diff, diff, None, None, 1.0, alpha, why is None, why)
    z_stat = diff / se
    half = _z(alpha) * se
    return Comparison(metric, test, c, t, diff, diff - half, diff + half,
                      t.value / c.value - 1.0 if c.value > 0 else None, z_stat, _p_two_sided_normal(z_stat),
                      alpha, why is None, why)

"""The statistics, by simulation: a planted lift is found, a null experiment is not called significant
more often than the test's level, and small samples are never called.  Seeded, array-level (cheap)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from recsys.experiments import (
    assign_arms,
    compare_means,
    compare_proportions,
    compare_ratios,
    readout,
    simulate_units,
)
from recsys.experiments._stats import proportion_estimate, ratio_estimate

ALPHA = 0.05
REPS = 400
#: A rejection rate this far above alpha (3 binomial standard errors over REPS replications) is a failure.
TOLERANCE = 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)


def _customers(rng: np.random.Generator, n: int, *, p: float = 0.10, ctr: float = 0.05, value: float = 40.0,
               spread: float = 0.5) -> dict[str, np.ndarray]:
    """Per-customer arrays: correlated clicks (a beta taste per customer), conversion, orders, revenue."""
    imp = rng.poisson(8.0, n)
    a, b = ctr * (1 / spread - 1), (1 - ctr) * (1 / spread - 1)
    clicks = rng.binomial(imp, rng.beta(a, b, n))
    conv = rng.random(n) < p
    orders = np.where(conv, rng.integers(1, 4, n), 0)
    revenue = np.where(orders > 0, rng.gamma(2.0 * np.maximum(orders, 1), value / 2.0), 0.0)
    return {"imp": imp, "clicks": clicks, "conv": conv, "orders": orders, "revenue": revenue}


def _tests(c: dict[str, np.ndarray], t: dict[str, np.ndarray]) -> dict[str, object]:
    return {
        "conversion": compare_proportions(int(c["conv"].sum()), c["conv"].size, int(t["conv"].sum()), t["conv"].size),
        "revenue_per_customer": compare_means(c["revenue"], t["revenue"]),
        "ctr": compare_ratios(c["clicks"], c["imp"], t["clicks"], t["imp"], metric="ctr"),
        "aov": compare_ratios(c["revenue"], c["orders"], t["revenue"], t["orders"], metric="aov",
                              events_are="orders"),
    }


def test_null_experiments_are_not_called_significant_more_often_than_alpha() -> None:
    """A/A: both arms drawn from the same world, REPS times; every test's false-positive rate ≤ α + 3 SE.
    The naive impression-level two-proportion test on CTR, for contrast, is far above α: clicks of one
    customer are correlated, which is why CTR uses the delta method over customers."""
    rng = np.random.default_rng(20)
    hits = {m: 0 for m in ("conversion", "revenue_per_customer", "ctr", "aov")}
    naive = 0
    for _ in range(REPS):
        c, t = _customers(rng, 1500), _customers(rng, 1500)
        for metric, cmp in _tests(c, t).items():
            assert cmp.enough, cmp.why_not
            hits[metric] += cmp.significant  # type: ignore[attr-defined]
        naive += compare_proportions(int(c["clicks"].sum()), int(c["imp"].sum()), int(t["clicks"].sum()),
                                     int(t["imp"].sum())).significant
    rates = {m: h / REPS for m, h in hits.items()}
    for metric, rate in rates.items():
        assert rate <= ALPHA + TOLERANCE, (metric, rate)
        assert rate >= ALPHA - 2 * TOLERANCE, (metric, rate)  # and not uselessly conservative
    assert naive / REPS > 2 * ALPHA, naive / REPS


@pytest.mark.parametrize(("metric", "world"), [
    ("conversion", {"p": 0.13}),            # +30 % relative conversion
    ("revenue_per_customer", {"p": 0.13}),  # follows from more converters at the same order value
    ("ctr", {"ctr": 0.065}),                # +30 % CTR
    ("aov", {"value": 52.0}),               # +30 % order value
])
def test_a_planted_lift_is_detected_and_its_interval_covers_the_truth(metric: str, world: dict[str, float]) -> None:
    """REPS/4 replications with a planted lift: detected (right sign, significant) in ≥ 90 % of them, and
    the 95 % interval of the difference covers the planted difference in ≥ 90 %."""
    rng = np.random.default_rng(7)
    base = {"p": 0.10, "ctr": 0.05, "value": 40.0}
    truth = {
        "conversion": world.get("p", 0.10) - 0.10,
        "revenue_per_customer": world.get("p", 0.10) * 2 * world.get("value", 40.0) - 0.10 * 2 * 40.0,
        "ctr": None,  # the ratio of sums' expectation is not exactly ctr under a beta taste: checked by sign
        "aov": world.get("value", 40.0) - 40.0,  # one order is worth Gamma(2, value/2): mean = value
    }[metric]
    reps = REPS // 4
    detected = covered = 0
    for _ in range(reps):
        c = _customers(rng, 6000, **base)  # type: ignore[arg-type]
        t = _customers(rng, 6000, **{**base, **world})  # type: ignore[arg-type]
        cmp = _tests(c, t)[metric]
        detected += cmp.significant and cmp.diff > 0  # type: ignore[attr-defined]
        if truth is not None:
            covered += cmp.low <= truth <= cmp.high  # type: ignore[attr-defined]
    assert detected / reps >= 0.9, (metric, detected / reps)
    if truth is not None:
        assert covered / reps >= 0.9, (metric, covered / reps)


def test_small_samples_are_too_small_to_call_whatever_the_p_value() -> None:
    cmp = compare_proportions(1, 30, 20, 30)  # p ≈ 1e-7, but 30 customers per arm
    assert cmp.p_value is not None and cmp.p_value < 1e-5
    assert not cmp.enough and not cmp.significant and cmp.verdict == "too small to call"
    assert "100 customers" in (cmp.why_not or "")
    few = compare_proportions(3, 5000, 12, 5000)  # enough customers, too few conversions in one arm
    assert few.verdict == "too small to call" and "conversions" in (few.why_not or "")


def test_the_tests_agree_with_textbook_references() -> None:
    # Welch: same p-value as scipy's
    rng = np.random.default_rng(1)
    a, b = rng.gamma(1.0, 10.0, 300), rng.gamma(1.0, 12.0, 250)
    ref = stats.ttest_ind(b, a, equal_var=False)
    cmp = compare_means(a, b)
    assert cmp.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert cmp.statistic == pytest.approx(ref.statistic, rel=1e-9)
    # Wilson interval: 10 of 100 → [0.0552, 0.1744] (Newcombe 1998, table I)
    est = proportion_estimate(10, 100)
    assert (est.low, est.high) == (pytest.approx(0.0552, abs=1e-4), pytest.approx(0.1744, abs=1e-4))
    # two-proportion z: 60/500 vs 40/500 → z = 2.108 (pooled)
    z = compare_proportions(40, 500, 60, 500)
    assert z.statistic == pytest.approx(2.108, abs=1e-3)
    # delta method: close to a bootstrap over customers
    imp = rng.poisson(8, 2000)
    clicks = rng.binomial(imp, rng.beta(0.5, 9.5, 2000))
    est = ratio_estimate(clicks, imp)
    boot = []
    for _ in range(300):
        i = rng.integers(0, 2000, 2000)
        boot.append(clicks[i].sum() / imp[i].sum())
    se_delta = (est.high - est.low) / (2 * 1.959964)  # type: ignore[operator]
    assert se_delta == pytest.approx(float(np.std(boot)), rel=0.15)


def test_readout_table_and_decision() -> None:
    rng = np.random.default_rng(3)
    import polars as pl

    units = pl.concat([simulate_units(rng, arm="control", customers=4000, p_convert=0.10),
                       simulate_units(rng, arm="challenger", customers=4000, p_convert=0.14)])
    r = readout(units, experiment="e", control="control")
    assert r.arms == ["control", "challenger"]
    assert r.table.height == 8 and set(r.table["metric"]) == {"ctr", "conversion", "revenue_per_customer", "aov"}
    d = r.decide("challenger")
    assert d.wins and "two-proportion z-test" in d.reason
    # the same world without the lift: no win
    null = pl.concat([simulate_units(rng, arm="control", customers=4000, p_convert=0.10),
                      simulate_units(rng, arm="challenger", customers=4000, p_convert=0.10)])
    assert not readout(null, experiment="e", control="control", primary_metric="conversion").decide("challenger").wins
    with pytest.raises(ValueError, match="primary_metric"):
        readout(units, experiment="e", control="control", primary_metric="map")


def test_assignment_is_sticky_proportional_and_independent_across_experiments() -> None:
    ids = [f"C{i:06d}" for i in range(20000)]
    arms = [("control", 0.8), ("challenger", 0.2)]
    a = assign_arms(ids, arms, salt="exp-1")
    assert a == assign_arms(ids, arms, salt="exp-1")  # sticky
    assert assign_arms(ids[:5], arms, salt="exp-1") == a[:5]  # a customer's arm does not depend on the others
    share = a.count("challenger") / len(ids)
    assert share == pytest.approx(0.2, abs=0.01)
    b = assign_arms(ids, arms, salt="exp-2")
    both = sum(x == "challenger" and y == "challenger" for x, y in zip(a, b, strict=True)) / len(ids)
    assert both == pytest.approx(0.04, abs=0.006)  # independent: 0.2 × 0.2
    three = assign_arms(ids, [("holdout", 0.1), ("a", 0.45), ("b", 0.45)], salt="c")
    assert {k: round(three.count(k) / len(ids), 2) for k in ("holdout", "a", "b")} == \
        {"holdout": pytest.approx(0.1, abs=0.01), "a": pytest.approx(0.45, abs=0.01), "b": pytest.approx(0.45, abs=0.01)}
    with pytest.raises(ValueError, match="arms"):
        assign_arms(ids, [], salt="x")

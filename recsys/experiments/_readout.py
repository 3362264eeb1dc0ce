"""From one row per customer to a read-out: every arm against the control arm, four metrics, one decision.

Why per customer: the customer (or anonymous session) is what was randomised, so it is the unit of
every test (recsys/experiments/_stats.py).  Whoever collects the outcomes — the service's attributed
events (``ExperimentLog.units``) or a campaign's assignments joined to purchases (``campaign_units``) —
hands over the same frame, ``UNIT_SCHEMA``; the read-out does not care where it came from, which is
what lets the simulation tests plant a lift in that frame and check it is found.

The decision (``Readout.decide``) reads one *primary* metric, fixed before the experiment (in its
config), because reading four metrics and promoting on whichever moved would multiply the false
positives by up to four.  With more than one treatment arm, the decision's level is Bonferroni-
corrected (``alpha / treatment arms``); the table's intervals stay at the nominal level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from recsys.experiments._stats import (
    METRIC_TESTS,
    Comparison,
    compare_means,
    compare_proportions,
    compare_ratios,
)

__all__ = ["Decision", "METRICS", "Readout", "UNIT_SCHEMA", "empty_units", "readout"]

#: One row per (arm, customer).
UNIT_SCHEMA = pl.Schema({
    "arm": pl.String, "subject": pl.String, "model_version": pl.String, "impressions": pl.Int64,
    "clicks": pl.Int64, "orders": pl.Int64, "revenue": pl.Float64, "converted": pl.Boolean,
})
METRICS: tuple[str, ...] = ("ctr", "conversion", "revenue_per_customer", "aov")


def empty_units() -> pl.DataFrame:
    """A frame with ``UNIT_SCHEMA`` and no rows, so an experiment without data still reads out."""
    return pl.DataFrame(schema=UNIT_SCHEMA)


@dataclass(frozen=True)
class Decision:
    """Whether ``arm`` beats the control on the primary metric, and why (a sentence for people)."""

    arm: str
    wins: bool
    reason: str


@dataclass
class Readout:
    """Per arm and metric: value and interval, difference to the control with its interval and test."""

    experiment: str
    control: str
    arms: list[str]
    primary_metric: str
    alpha: float
    #: arm, model_version, customers, metric, value, low, high, diff, diff_low, diff_high, relative,
    #: p_value, test, verdict, note
    table: pl.DataFrame
    comparisons: dict[tuple[str, str], Comparison] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def treatments(self) -> list[str]:
        """The arms other than the control, in order."""
        return [a for a in self.arms if a != self.control]

    def decide(self, arm: str) -> Decision:
        """``arm`` wins when its primary-metric difference to the control is positive and significant at
        ``alpha / treatment arms`` and the sample is large enough to call."""
        if arm not in self.arms or arm == self.control:
            raise ValueError(f"The 'arm' parameter must be one of {self.treatments}. Got {arm!r} instead.")
        c = self.comparisons[(arm, self.primary_metric)]
        level = self.alpha / max(1, len([a for a in self.treatments if a != "holdout"]))
        name = self.primary_metric
        if not c.enough:
            return Decision(arm, False, f"{name}: too small to call ({c.why_not})")
        if c.p_value is None or c.diff is None:
            return Decision(arm, False, f"{name}: no difference can be computed")
        lift = f"{c.diff:+.4g} ({'' if c.relative is None else f'{100 * c.relative:+.1f} %, '}p = {c.p_value:.3g})"
        if c.p_value < level and c.diff > 0:
            return Decision(arm, True, f"{name}: {arm} better than {self.control} by {lift}, {c.test}")
        if c.p_value < level:
            return Decision(arm, False, f"{name}: {arm} worse than {self.control} by {lift}")
        return Decision(arm, False, f"{name}: no significant difference at level {level:g}: {lift}")


def _per_arm(units: pl.DataFrame, arm: str) -> pl.DataFrame:
    return units.filter(pl.col("arm") == arm)


def _compare(metric: str, c: pl.DataFrame, t: pl.DataFrame, *, alpha: float, min_units: int,
             min_events: int) -> Comparison:
    if metric == "conversion":
        return compare_proportions(int(c["converted"].sum()), c.height, int(t["converted"].sum()), t.height,
                                   alpha=alpha, min_units=min_units, min_events=min_events)
    if metric == "revenue_per_customer":
        return compare_means(c["revenue"].to_numpy(), t["revenue"].to_numpy(), alpha=alpha, min_units=min_units,
                             min_events=min_events)
    if metric == "ctr":
        return compare_ratios(c["clicks"].to_numpy(), c["impressions"].to_numpy(), t["clicks"].to_numpy(),
                              t["impressions"].to_numpy(), metric="ctr", events_are="clicks", alpha=alpha,
                              min_units=min_units, min_events=min_events)
    if metric == "aov":
        return compare_ratios(c["revenue"].to_numpy(), c["orders"].to_numpy(), t["revenue"].to_numpy(),
                              t["orders"].to_numpy(), metric="aov", events_are="orders", alpha=alpha,
                              min_units=min_units, min_events=min_events)
    raise ValueError(f"The 'metric' parameter must be one of {METRICS}. Got {metric!r} instead.")


def readout(
    units: pl.DataFrame,
    *,
    experiment: str,
    control: str,
    primary_metric: str = "conversion",
    alpha: float = 0.05,
    min_units: int = 100,
    min_events: int = 10,
    arms: list[str] | None = None,
) -> Readout:
    """Compare every arm of ``units`` (``UNIT_SCHEMA``) with ``control`` on ``METRICS``.

    Parameters
    ----------
    units
        One row per (arm, customer): what the customer was shown and did.
    control
        The arm every other arm is compared with.
    primary_metric
        The metric ``Readout.decide`` reads.
    min_units, min_events
        Below these (per arm) a comparison is "too small to call" (see ``recsys.experiments._stats``).
    arms
        Arms in display order (default: control first, then the others by name).
    """
    missing = [c for c in UNIT_SCHEMA if c not in units.columns]
    if missing:
        raise ValueError(f"units frame lacks column(s) {missing}; expected {list(UNIT_SCHEMA)}")
    if primary_metric not in METRICS:
        raise ValueError(f"The 'primary_metric' parameter must be one of {METRICS}. Got {primary_metric!r} instead.")
    present = sorted(set(units["arm"].to_list()))
    order = arms or [control, *[a for a in present if a != control]]
    order = [a for a in dict.fromkeys(order)]
    c_units = _per_arm(units, control)
    rows: list[dict[str, Any]] = []
    comparisons: dict[tuple[str, str], Comparison] = {}
    for arm in order:
        frame = _per_arm(units, arm)
        versions = sorted({v for v in frame["model_version"].to_list() if v})
        for metric in METRICS:
            cmp = _compare(metric, c_units, frame, alpha=alpha, min_units=min_units, min_events=min_events)
            est = cmp.treatment
            row = {"arm": arm, "model_version": ",".join(versions) or None, "customers": frame.height,
                   "metric": metric, "value": est.value, "low": est.low, "high": est.high, "events": est.events,
                   "diff": None, "diff_low": None, "diff_high": None, "relative": None, "p_value": None,
                   "test": METRIC_TESTS[metric], "verdict": "control" if arm == control else cmp.verdict,
                   "note": None}
            if arm != control:
                comparisons[(arm, metric)] = cmp
                row.update(diff=cmp.diff, diff_low=cmp.low, diff_high=cmp.high, relative=cmp.relative,
                           p_value=cmp.p_value, note=cmp.why_not)
            rows.append(row)
    schema = {"arm": pl.String, "model_version": pl.String, "customers": pl.Int64, "metric": pl.String,
              "value": pl.Float64, "low": pl.Float64, "high": pl.Float64, "events": pl.Int64, "diff": pl.Float64,
              "diff_low": pl.Float64, "diff_high": pl.Float64, "relative": pl.Float64, "p_value": pl.Float64,
              "test": pl.String, "verdict": pl.String, "note": pl.String}
    notes = []
    if control not in present:
        notes.append(f"control arm {control!r} has no customers yet")
    if units.height and int(units["impressions"].sum()) == 0:
        notes.append("no impressions recorded: CTR needs impression events (or served lists)")
    return Readout(experiment, control, order, primary_metric, alpha, pl.DataFrame(rows, schema=schema, orient="row"),
                   comparisons, notes)


def simulate_units(rng: np.random.Generator, *, arm: str, customers: int, p_convert: float,
                   mean_order: float = 40.0, impressions: float = 8.0, ctr: float = 0.05,
                   taste_spread: float = 0.5) -> pl.DataFrame:
    """Simulated customers of one arm (tests and docs): heterogeneous click propensity per customer
    (a beta around ``ctr``: clicks are correlated within a customer, as in real traffic), Poisson
    impressions, conversion with probability ``p_convert``, 1–3 orders of gamma-distributed value."""
    imp = rng.poisson(impressions, customers)
    a = max(ctr * (1 / taste_spread - 1), 1e-3)
    b = max((1 - ctr) * (1 / taste_spread - 1), 1e-3)
    clicks = rng.binomial(imp, rng.beta(a, b, customers))
    converted = rng.random(customers) < p_convert
    orders = np.where(converted, rng.integers(1, 4, customers), 0)
    # a sum of k Gamma(2, θ) order values is Gamma(2k, θ)
    revenue = np.where(orders > 0, rng.gamma(2.0 * np.maximum(orders, 1), mean_order / 2.0), 0.0)
    return pl.DataFrame({"arm": [arm] * customers, "subject": [f"{arm}-{i}" for i in range(customers)],
                         "model_version": [None] * customers, "impressions": imp.astype(np.int64),
                         "clicks": clicks.astype(np.int64), "orders": orders.astype(np.int64),
                         "revenue": revenue.astype(np.float64), "converted": converted}, schema=UNIT_SCHEMA)

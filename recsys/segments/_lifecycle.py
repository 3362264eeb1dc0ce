"""Lifecycle stage per customer: where they are on the road from first order to loyal (or gone).

Why stages next to RFM: relationship campaigns act on *transitions* — a welcome series for ``new``,
a second-order nudge for ``one_time``, a loyalty perk for ``loyal``, a reminder before an
``at_risk`` customer becomes ``lapsed`` — and those need absolute, explainable rules rather than
relative quantile scores.

Rules, first match wins (as of ``now``; only purchases up to ``now`` count):

1. ``new`` — first purchase within the last ``new_days`` days (whatever happened since);
2. ``lapsed`` — no purchase in the last ``lapsed_days`` days;
3. ``one_time`` — exactly one order;
4. ``at_risk`` — two or more orders and overdue against their *own* rhythm: days since the last
   order > ``max(at_risk_factor × median gap between their orders, at_risk_min_days)``;
5. ``loyal`` — at least ``loyal_orders`` orders;
6. ``repeat`` — 2 to ``loyal_orders - 1`` orders.

Defaults that suit both a fashion shop and a grocery: 30 days of being ``new`` covers a fashion
welcome series and a month of grocery trips; 180 days without an order is lapsed for clothing (two
seasons) and far beyond any grocery rhythm; relative overdue (2 × own median gap) is what makes one
rule work for a weekly grocery shopper (at risk after ~2 weeks) and a quarterly clothes buyer (after
~6 months), with a 14-day floor so a daily shopper missing one week is not flagged; 4 orders to be
loyal is a clothing customer's year and a grocery household's first month.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import polars as pl

from recsys.dataset import Dataset
from recsys.exceptions import ConfigError
from recsys.segments._lines import days_between, orders_until, purchase_lines, resolve_now

__all__ = ["LIFECYCLE_STAGES", "lifecycle", "lifecycle_from_lines"]

LIFECYCLE_STAGES: Final[tuple[str, ...]] = ("new", "one_time", "repeat", "loyal", "at_risk", "lapsed")

LIFECYCLE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "customer_id": pl.String(),
    "lifecycle": pl.String(),
    "orders": pl.Int64(),
    "tenure_days": pl.Float64(),
    "recency_days": pl.Float64(),
    "median_gap_days": pl.Float64(),
}


def _check(name: str, value: object, rule: str, ok: bool) -> None:
    if not ok:
        raise ConfigError(f"The '{name}' parameter of lifecycle must be {rule}. Got {value!r} instead.")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def lifecycle_from_lines(
    lines: pl.DataFrame,
    now: datetime,
    *,
    new_days: float = 30.0,
    lapsed_days: float = 180.0,
    loyal_orders: int = 4,
    at_risk_factor: float = 2.0,
    at_risk_min_days: float = 14.0,
) -> pl.DataFrame:
    """Lifecycle table from ``purchase_lines`` output (see ``lifecycle`` for the parameters)."""
    _check("new_days", new_days, "a number ≥ 0", _is_number(new_days) and new_days >= 0)
    _check("lapsed_days", lapsed_days, "a number > 0", _is_number(lapsed_days) and lapsed_days > 0)
    _check("loyal_orders", loyal_orders, "an int ≥ 2",
           isinstance(loyal_orders, int) and not isinstance(loyal_orders, bool) and loyal_orders >= 2)
    _check("at_risk_factor", at_risk_factor, "a number > 0", _is_number(at_risk_factor) and at_risk_factor > 0)
    _check("at_risk_min_days", at_risk_min_days, "a number ≥ 0",
           _is_number(at_risk_min_days) and at_risk_min_days >= 0)
    orders = orders_until(lines, now)
    if orders.height == 0:
        return pl.DataFrame(schema=LIFECYCLE_SCHEMA)
    per = (
        orders.sort("customer_id", "ts")
        .with_columns(days_between(pl.col("ts"), pl.col("ts").shift(1).over("customer_id")).alias("_gap"))
        .group_by("customer_id")
        .agg(
            pl.len().cast(pl.Int64).alias("orders"),
            days_between(now, pl.col("ts").min()).alias("tenure_days"),
            days_between(now, pl.col("ts").max()).alias("recency_days"),
            pl.col("_gap").median().alias("median_gap_days"),
        )
    )
    n, rec = pl.col("orders"), pl.col("recency_days")
    overdue = rec > pl.max_horizontal(at_risk_factor * pl.col("median_gap_days"), pl.lit(float(at_risk_min_days)))
    stage = (
        pl.when(pl.col("tenure_days") <= new_days).then(pl.lit("new"))
        .when(rec > lapsed_days).then(pl.lit("lapsed"))
        .when(n == 1).then(pl.lit("one_time"))
        .when(overdue).then(pl.lit("at_risk"))
        .when(n >= loyal_orders).then(pl.lit("loyal"))
        .otherwise(pl.lit("repeat"))
        .alias("lifecycle")
    )
    return per.with_columns(stage).select(list(LIFECYCLE_SCHEMA)).sort("customer_id")


def lifecycle(
    data: Dataset,
    *,
    now: datetime | None = None,
    new_days: float = 30.0,
    lapsed_days: float = 180.0,
    loyal_orders: int = 4,
    at_risk_factor: float = 2.0,
    at_risk_min_days: float = 14.0,
) -> pl.DataFrame:
    """Lifecycle stage of every customer with a purchase up to ``now`` (rules in the module docstring).

    Parameters
    ----------
    data
        The shop; only purchases are read.
    now
        Reference time; later purchases are ignored.  Default: the last purchase in the data.
    new_days
        A customer whose first purchase is at most this many days old is ``new``.
    lapsed_days
        No purchase for more than this many days → ``lapsed``.
    loyal_orders
        Orders needed to be ``loyal`` (fewer, but at least two, is ``repeat``).
    at_risk_factor, at_risk_min_days
        A repeat or loyal customer is ``at_risk`` once the days since their last order exceed
        ``max(at_risk_factor × their median inter-order gap, at_risk_min_days)``.

    Returns
    -------
    pl.DataFrame
        ``customer_id, lifecycle, orders, tenure_days, recency_days, median_gap_days`` (the gap is
        null for one-order customers), sorted by ``customer_id``.
    """
    lines = purchase_lines(data)
    return lifecycle_from_lines(
        lines, resolve_now(lines, now), new_days=new_days, lapsed_days=lapsed_days, loyal_orders=loyal_orders,
        at_risk_factor=at_risk_factor, at_risk_min_days=at_risk_min_days,
    )

"""RFM: recency, frequency and monetary value per customer, their quantile scores and a value segment.

Why rank-based scores: frequency is massively tied (in a fashion shop half the customers ordered
once), so cutting at value quantiles would put identical customers in different bins depending on
row order.  Each score is ``1 + floor((rank_min - 1) * bins / n)`` where ``rank_min`` is the rank of
the first customer of a tie block: equal raw values always get equal scores, scores never decrease
as the raw value improves, the worst value always scores 1, and a tie block covering more than one
bin simply leaves some scores unused (when half the customers ordered once, they all score F = 1 and
the next frequency scores F = 3).

The value segment is a readable rule on the three scores (``bins = 5`` shown; other ``bins`` use the
same quantile positions — "top" is the top 20 %, "high" the top 40 %, "mid" the top 60 %, "not
lapsed" above the bottom 20 % of recency):

* ``most_valuable`` — F ≥ 4 and M ≥ 4, one of them 5, and R ≥ 2: frequent, high-spending (at the very
  top on at least one of the two) and not lapsed — about the top fifth of a shop;
* ``potential`` — not the above, and either recent (R ≥ 3) with F ≥ 3 (a repeat buyer) or M ≥ 4
  (a big first basket), or F ≥ 4 and M ≥ 4 without making the cut above (close to the top, or
  a former high-value customer who has lapsed and is worth winning back);
* ``low_value`` — everyone else: one small order, or long ago with little spend.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import polars as pl

from recsys.dataset import Dataset
from recsys.exceptions import ConfigError
from recsys.segments._lines import days_between, money, orders_until, purchase_lines, resolve_now

__all__ = ["VALUE_SEGMENTS", "rfm", "rfm_from_lines", "quantile_score", "value_segment_expr"]

VALUE_SEGMENTS: Final[tuple[str, ...]] = ("most_valuable", "potential", "low_value")

RFM_SCHEMA: Final[dict[str, pl.DataType]] = {
    "customer_id": pl.String(),
    "recency_days": pl.Float64(),
    "frequency": pl.Int64(),
    "monetary": pl.Float64(),
    "r_score": pl.Int32(),
    "f_score": pl.Int32(),
    "m_score": pl.Int32(),
    "value_segment": pl.String(),
}


def _check_bins(bins: object) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 100:
        raise ConfigError(f"The 'bins' parameter of rfm must be an int in [2, 100]. Got {bins!r} instead.")
    return bins


def quantile_score(expr: pl.Expr, bins: int, *, higher_is_better: bool = True) -> pl.Expr:
    """Score 1..``bins`` by rank; ties share the score of the first position of their block.

    Parameters
    ----------
    expr
        The raw values (one per customer, no nulls).
    bins
        Number of score levels.
    higher_is_better
        ``False`` for recency, where fewer days since the last purchase is better.
    """
    key = expr if higher_is_better else -expr
    rank = key.rank("min").cast(pl.Int64)
    return (1 + (rank - 1) * bins // pl.len()).cast(pl.Int32)


def _cut(bins: int, share: int) -> int:
    """Smallest score whose quantile position ``(s - 1) / bins`` is at least ``share / 5``."""
    return min(-(-share * bins // 5) + 1, bins)


def value_segment_expr(bins: int) -> pl.Expr:
    """The value-segment rule (see the module docstring) on ``r_score``, ``f_score``, ``m_score``."""
    top, hi, mid, alive = _cut(bins, 4), _cut(bins, 3), _cut(bins, 2), _cut(bins, 1)
    r, f, m = pl.col("r_score"), pl.col("f_score"), pl.col("m_score")
    high_value = (f >= hi) & (m >= hi)
    return (
        pl.when(high_value & ((f >= top) | (m >= top)) & (r >= alive))
        .then(pl.lit("most_valuable"))
        .when(((r >= mid) & ((f >= mid) | (m >= hi))) | high_value)
        .then(pl.lit("potential"))
        .otherwise(pl.lit("low_value"))
        .alias("value_segment")
    )


def rfm_from_lines(lines: pl.DataFrame, now: datetime, bins: int = 5) -> pl.DataFrame:
    """RFM table from ``purchase_lines`` output, as of ``now`` (lines after ``now`` are ignored)."""
    bins = _check_bins(bins)
    orders = orders_until(lines, now)
    if orders.height == 0:
        return pl.DataFrame(schema=RFM_SCHEMA)
    base = (
        orders.group_by("customer_id")
        .agg(
            pl.col("ts").max().alias("_last"),
            pl.len().cast(pl.Int64).alias("frequency"),
            money(pl.col("value").sum()).alias("monetary"),
        )
        .with_columns(days_between(now, pl.col("_last")).alias("recency_days"))
    )
    return (
        base.with_columns(
            quantile_score(pl.col("recency_days"), bins, higher_is_better=False).alias("r_score"),
            quantile_score(pl.col("frequency"), bins).alias("f_score"),
            quantile_score(pl.col("monetary"), bins).alias("m_score"),
        )
        .with_columns(value_segment_expr(bins))
        .select(list(RFM_SCHEMA))
        .sort("customer_id")
    )


def rfm(data: Dataset, *, now: datetime | None = None, bins: int = 5) -> pl.DataFrame:
    """Recency, frequency, monetary, their scores and the value segment, one row per customer.

    Parameters
    ----------
    data
        The shop; only purchases are read.
    now
        Reference time; purchases after it are ignored.  Default: the last purchase in the data.
    bins
        Number of score levels (5 → quintile scores 1..5).

    Returns
    -------
    pl.DataFrame
        ``customer_id, recency_days, frequency, monetary, r_score, f_score, m_score, value_segment``
        for every customer with at least one purchase up to ``now``, sorted by ``customer_id``.
        ``frequency`` counts distinct orders (distinct purchase days for lines without ``order_id``);
        ``monetary`` sums ``price × quantity`` (see ``recsys.segments._lines`` for missing prices).

    Examples
    --------
    >>> from recsys.data.synthetic import generate_shop
    >>> table = rfm(generate_shop(seed=0).dataset)
    >>> sorted(table["value_segment"].unique())
    ['low_value', 'most_valuable', 'potential']
    """
    lines = purchase_lines(data)
    return rfm_from_lines(lines, resolve_now(lines, now), bins)

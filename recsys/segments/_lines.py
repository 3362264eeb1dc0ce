"""Purchase lines with a money value and an order key: the one input every segment computation reads.

Why one place: RFM, lifecycle, churn features and CLV labels must agree on what an "order" and a
line's "value" are, otherwise a customer could be "one_time" in the lifecycle and have frequency 3
in RFM.  The two policies, applied here once:

* **order** — ``order_id`` when present; a line without one counts as part of a single order per
  customer and calendar day (so frequency falls back to distinct purchase days);
* **value** — ``price × quantity``; a line without a price uses the median price the same item was
  sold at elsewhere in the data, else the catalogue price, else 0 (so a shop without prices still
  gets recency/frequency, and monetary is simply 0 everywhere).

Values are carried as integers in 1/10,000 of the currency unit (``VALUE_SCALE``) and only divided
at the end: polars sums floats in parallel partitions, so float totals differed in the last bits
from run to run, and the boosted trees (which bin features) then learned visibly different models.
Integer sums are exact, so every table and model here is reproducible.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import polars as pl

from recsys.dataset import Dataset

__all__ = ["DAY", "VALUE_SCALE", "purchase_lines", "orders_until", "resolve_now", "days_between", "money"]

DAY = timedelta(days=1)
#: ``value`` columns are Int64 in units of 1 / VALUE_SCALE of the currency (see the module docstring).
VALUE_SCALE = 10_000
_DAY_US = 86_400_000_000


def purchase_lines(data: Dataset) -> pl.DataFrame:
    """Purchases as ``customer_id, ts, order_key, item_id, category, value`` (Int64, see ``VALUE_SCALE``).

    The result for the most recent ``Dataset`` object is cached (one entry, held by a weak
    reference), because a segment run reads it from every model's fit, evaluate and predict.

    Notes
    -----
    The missing-price fallback (median observed price of the item) is computed over every purchase
    line given, including lines after a cut-off; it only ever fills lines that carry no price at all,
    so it does not leak who buys when.
    """
    global _CACHE
    if _CACHE is not None and _CACHE[0]() is data:
        return _CACHE[1]
    lines = _purchase_lines(data)
    _CACHE = (weakref.ref(data, _forget), lines)
    return lines


_CACHE: tuple[weakref.ref[Dataset], pl.DataFrame] | None = None


def _forget(ref: weakref.ref[Dataset]) -> None:
    """The cached dataset is gone: so are its lines (they held ~2.6 GB at H&M size after a training
    run had dropped its evaluation data)."""
    global _CACHE
    if _CACHE is not None and _CACHE[0] is ref:
        _CACHE = None


@contextmanager
def lines_scope(data: Dataset) -> Iterator[None]:
    """Within: ``purchase_lines(data)`` is computed once; on exit it is dropped unless it was cached
    before.  Why: a caller that only needs the lines for one computation (the relationship KPIs of a
    training run) must not leave them resident beside the models it fits next."""
    global _CACHE
    held = _CACHE is not None and _CACHE[0]() is data
    try:
        yield
    finally:
        if not held and _CACHE is not None and _CACHE[0]() is data:
            _CACHE = None


def _purchase_lines(data: Dataset) -> pl.DataFrame:
    p = data.purchases
    catalogue = data.items.select("item_id", pl.col("price").alias("_list_price"), "category")
    frame = p.join(catalogue, on="item_id", how="left")
    price: pl.Expr = pl.col("price")
    if p["price"].null_count():
        observed = (
            p.filter(pl.col("price").is_not_null())
            .group_by("item_id")
            .agg(pl.col("price").median().alias("_median_price"))
        )
        frame = frame.join(observed, on="item_id", how="left")
        price = pl.coalesce("price", "_median_price", "_list_price", pl.lit(0.0))
    order_key: pl.Expr = pl.col("order_id")
    if p["order_id"].null_count():
        order_key = pl.coalesce(pl.col("order_id"), pl.lit("d:") + pl.col("ts").dt.date().cast(pl.String))
    return frame.select(
        "customer_id",
        "ts",
        order_key.alias("order_key"),
        "item_id",
        "category",
        (price * pl.col("quantity").cast(pl.Float64) * VALUE_SCALE).round().cast(pl.Int64).alias("value"),
    )


def orders_until(lines: pl.DataFrame, until: datetime, since: datetime | None = None) -> pl.DataFrame:
    """One row per (customer, order) with ``since < ts <= until``: order time (first line) and value (Int64)."""
    cond = pl.col("ts") <= until
    if since is not None:
        cond = cond & (pl.col("ts") > since)
    return (
        lines.filter(cond)
        .group_by("customer_id", "order_key")
        .agg(pl.col("ts").min(), pl.col("value").sum())
    )


def resolve_now(lines: pl.DataFrame, now: datetime | None) -> datetime:
    """``now`` or, when omitted, the last purchase time in the data (an "as of the latest data" view)."""
    if now is not None:
        return now
    if lines.height == 0:
        return datetime(1970, 1, 1)
    return lines["ts"].max()  # type: ignore[return-value]


def days_between(later: datetime | pl.Expr, earlier: pl.Expr) -> pl.Expr:
    """Fractional days ``later - earlier`` as Float64 (an expression)."""
    later_expr = later if isinstance(later, pl.Expr) else pl.lit(later, dtype=pl.Datetime("us"))
    return (later_expr - earlier).dt.total_microseconds().cast(pl.Float64) / _DAY_US


def money(expr: pl.Expr) -> pl.Expr:
    """An Int64 ``value`` aggregate back in currency units (Float64)."""
    return expr.cast(pl.Float64) / VALUE_SCALE

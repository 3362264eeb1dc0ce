"""Customer groups for segment breakdowns of the metrics: activity tiers and cold vs known.

Why: an average hides who a model serves well.  Popularity wins on one-order customers and loses on
loyal ones; a model that only helps heavy buyers can still top the average.  These helpers return
``(customer_id, group)`` frames for ``evaluate_by_group``; ``group`` is a ``pl.Enum`` so reports sort
in a meaningful order rather than alphabetically.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import polars as pl

from recsys.dataset import Dataset, purchases_only
from recsys.evaluation import _ground_truth as gt
from recsys.exceptions import ConfigError

__all__ = ["activity_tiers", "cold_vs_known", "tier_labels"]


def tier_labels(edges: Sequence[int]) -> list[str]:
    """Readable labels for order-count tiers starting at each edge: (1, 2, 5, 20) →
    ["1 order", "2-4 orders", "5-19 orders", "20+ orders"]."""
    labels = []
    for lo, hi in zip(edges, [*edges[1:], None], strict=True):
        if hi is None:
            labels.append(f"{lo}+ orders")
        elif hi - lo == 1:
            labels.append(f"{lo} order" if lo == 1 else f"{lo} orders")
        else:
            labels.append(f"{lo}-{hi - 1} orders")
    return labels


def activity_tiers(train: Dataset | pl.DataFrame, *, edges: Sequence[int] = (1, 2, 5, 20)) -> pl.DataFrame:
    """Tier of every customer with a purchase in ``train``, by their number of distinct orders there.

    An order is a distinct ``order_id``; purchase lines without one count one order per distinct
    timestamp (a basket without an id is still one visit).  Customers with no purchase in ``train``
    are not listed: ``evaluate_by_group`` reports them under ``group = null`` (they are the cold ones).

    Parameters
    ----------
    train
        The training window (``Dataset`` or interactions frame with ``customer_id`` and ``order_id``
        or ``ts``).
    edges
        Strictly increasing order counts starting at 1; tier i holds ``edges[i] <= orders < edges[i+1]``.

    Returns
    -------
    polars.DataFrame
        ``customer_id: str, group: Enum(tier_labels(edges))``, sorted by customer_id.
    """
    edges = list(edges)
    ok = (
        bool(edges)
        and all(isinstance(e, int) and not isinstance(e, bool) for e in edges)
        and edges[0] == 1
        and all(a < b for a, b in itertools.pairwise(edges))
    )
    if not ok:
        raise ConfigError(
            f"The 'edges' parameter of activity_tiers must be strictly increasing ints starting at 1. Got {edges!r} instead."
        )
    frame = train.purchases if isinstance(train, Dataset) else train
    if isinstance(frame, pl.DataFrame):
        frame = purchases_only(frame)
    gt.purchases("train", frame)  # validates customer_id / item_id
    if "order_id" in frame.columns and "ts" in frame.columns:
        no_id = pl.col("order_id").is_null()
        orders = pl.col("order_id").drop_nulls().n_unique() + pl.col("ts").filter(no_id).n_unique()
    elif "order_id" in frame.columns or "ts" in frame.columns:
        orders = pl.col("order_id" if "order_id" in frame.columns else "ts").drop_nulls().n_unique()
    else:
        raise ConfigError("activity_tiers needs an 'order_id' or 'ts' column in train to count orders.")
    labels = tier_labels(edges)
    counts = frame.group_by(pl.col("customer_id").cast(pl.String)).agg(orders=orders)
    tier = pl.lit(labels[0])
    for e, lab in zip(edges[1:], labels[1:]):
        tier = pl.when(pl.col("orders") >= e).then(pl.lit(lab)).otherwise(tier)
    return counts.select("customer_id", group=tier.cast(pl.Enum(labels))).sort("customer_id")


def cold_vs_known(test: Dataset | pl.DataFrame, train: Dataset | pl.DataFrame) -> pl.DataFrame:
    """``known`` if a customer active in the test window has a purchase in ``train``, else ``cold``.

    Returns
    -------
    polars.DataFrame
        ``customer_id: str, group: Enum(["known", "cold"])`` for every customer with a test purchase.
    """
    active = gt.purchases("test", test).select("customer_id").unique()
    seen = gt.purchases("train", train).select("customer_id").unique().with_columns(known=pl.lit(True))
    return (
        active.join(seen, on="customer_id", how="left")
        .select(
            "customer_id",
            group=pl.when(pl.col("known"))
            .then(pl.lit("known"))
            .otherwise(pl.lit("cold"))
            .cast(pl.Enum(["known", "cold"])),
        )
        .sort("customer_id")
    )

"""Features per (customer, candidate item): what the learned ranker sees.

Why these: on grocery and fashion data alike, recency and frequency of the customer's own purchases
(of the item and of its category) carry most of the signal; popularity and trend tell the ranker how
much to trust a generator's proposal; price relative to what the customer usually pays in the category
separates an upsell from a mismatch.  Item-level statistics are learned once at fit time; customer-level
ones are computed per request from the customer's history, so new events count immediately.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from recsys._time import newest
from recsys.dataset import Dataset

__all__ = ["ItemStats", "build_features", "feature_names"]

_DAY_US = 86_400 * 1_000_000

CUSTOMER_FEATURES = (
    "ci_count", "ci_days_since", "ci_due_ratio",
    "cc_count", "cc_days_since", "cc_share", "cc_lift", "price_rel",
    "c_orders", "c_lines", "c_days_since", "c_categories",
)
ITEM_FEATURES = ("i_pop", "i_pop_recent", "i_trend", "i_price", "i_buyers", "i_repeat_rate", "i_interval")


def feature_names(generator_names: Sequence[str]) -> list[str]:
    """The ranker's feature columns in order: score and rank per generator, ``n_gens``, then the
    customer and item features."""
    gens = [f"{kind}_{g}" for g in generator_names for kind in ("score", "rank")]
    return [*gens, "n_gens", *CUSTOMER_FEATURES, *ITEM_FEATURES]


def _repeat_gaps(purchases: pl.DataFrame) -> pl.DataFrame:
    """Per item: how many buyers bought it again (``_repeaters``) and the median over them of each buyer's
    median days between purchases (``i_interval``).

    Why not a group-by on (item, customer) strings with a sorted diff per group: at H&M size (31M lines)
    that took minutes; one sort of a packed integer (item, customer) key, the gaps between neighbouring
    rows of the same key, and a group-by of only the repeat rows give the same numbers ~12× faster.
    """
    # one categorical cast per column: the codes are local to a cast, so the key and the code -> item
    # name table must come from the same one
    coded = purchases.select(
        pl.col("item_id").cast(pl.Categorical).to_physical().cast(pl.UInt64).alias("_item"),
        pl.col("customer_id").cast(pl.Categorical).to_physical().cast(pl.UInt64).alias("_cust"),
        "item_id", "ts",
    )
    names = coded.select("_item", "item_id").unique("_item")
    codes = coded.select(
        (pl.col("_item") * (1 << 32) + pl.col("_cust")).alias("_key"), "ts",
    ).sort("_key", "ts")  # integers only: the item id strings do not travel through the sort (~0.5 GB)
    again = pl.col("_key") == pl.col("_key").shift(1)
    gaps = codes.with_columns(
        pl.when(again).then((pl.col("ts") - pl.col("ts").shift(1)).dt.total_seconds()).alias("_gap")
    ).filter(pl.col("_gap").is_not_null())
    return (
        gaps.group_by("_key").agg(pl.col("_gap").median())
        .with_columns((pl.col("_key") // (1 << 32)).alias("_item"))
        .join(names, on="_item", how="left")
        .group_by("item_id")
        .agg(pl.len().alias("_repeaters"),
             (pl.col("_gap").median() / 86_400.0).cast(pl.Float32).alias("i_interval"))
    )


class ItemStats:
    """Item- and category-level statistics learned from training purchases (no customer data)."""

    def fit(self, data: Dataset, *, recent_days: float = 28.0, half_life_days: float = 60.0) -> ItemStats:
        """Learn per-item popularity, trend, price, buyers and repeat statistics and the category shares
        from ``data``'s purchases; returns self."""
        p = data.purchases
        ref = newest(p["ts"], datetime(1970, 1, 1))
        age = (pl.lit(ref) - pl.col("ts")).dt.total_seconds() / 86_400.0
        per_item = p.group_by("item_id").agg(
            (0.5 ** (age / half_life_days)).sum().cast(pl.Float32).alias("i_pop"),
            (pl.col("ts") > ref - timedelta(days=recent_days)).sum().cast(pl.Float32).alias("i_pop_recent"),
            pl.len().cast(pl.Float32).alias("_n"),
            pl.len().alias("_lines"),
            pl.col("customer_id").n_unique().cast(pl.Float32).alias("i_buyers"),
            pl.col("price").median().alias("_paid"),
        )
        repeat = _repeat_gaps(p)
        first = p["ts"].min() if p.height else None
        span = max((ref - first).total_seconds() / 86_400.0, recent_days) if isinstance(first, datetime) else recent_days
        self.items_ = (
            data.items.select("item_id", "category", "price")
            .join(per_item, on="item_id", how="left")
            .join(repeat, on="item_id", how="left")
            .with_columns(
                # share of the item's buyers who bought it again (0 when bought, none again)
                pl.when(pl.col("i_buyers").is_not_null())
                .then((pl.col("_repeaters").fill_null(0) / pl.col("i_buyers").cast(pl.Float64))
                      .cast(pl.Float32))
                .alias("i_repeat_rate"),
                pl.coalesce("price", "_paid").cast(pl.Float32).alias("i_price"),
                ((pl.col("i_pop_recent") / recent_days + 0.1) / (pl.col("_n") / span + 0.1))
                .cast(pl.Float32).alias("i_trend"),
                pl.col("category").fill_null(""),
            )
            .select("item_id", "category", *ITEM_FEATURES)
            .with_columns(pl.col("i_pop", "i_pop_recent", "i_buyers").fill_null(0.0))
        )
        # category shares from the per-item counts: joining every purchase line to its category copied
        # all of them (~2 GB at H&M size) to count 105k items' worth of numbers
        total = max(p.height, 1)
        self.categories_ = (
            per_item.select("item_id", "_lines")
            .join(data.items.select("item_id", "category"), on="item_id", how="left")
            .group_by(pl.col("category").fill_null(""))
            .agg((pl.col("_lines").sum() / total).cast(pl.Float32).alias("cat_share"))
        )
        self.reference_time_ = ref
        return self

    def state(self) -> dict[str, Any]:
        """The learned frames and reference time, for the bundle to save (``from_state`` reads them back)."""
        return {"items": self.items_, "categories": self.categories_, "reference_time": self.reference_time_}

    @classmethod
    def from_state(cls, items: pl.DataFrame, categories: pl.DataFrame, reference_time: datetime) -> ItemStats:
        """Fitted stats from the parts ``state`` returned, without refitting."""
        obj = cls()
        obj.items_, obj.categories_, obj.reference_time_ = items, categories, reference_time
        return obj


def build_features(
    wide: pl.DataFrame, history: pl.DataFrame, stats: ItemStats, now: datetime
) -> pl.DataFrame:
    """Add customer and item features to the widened candidate frame (one row per customer × item).

    ``history`` holds the purchases of (at least) the customers in ``wide``, strictly before ``now``.
    """
    now_lit = pl.lit(now, dtype=pl.Datetime("us"))
    days = lambda c: ((now_lit - pl.col(c)).dt.total_microseconds() / _DAY_US).cast(pl.Float32)  # noqa: E731
    items = stats.items_
    h = history.select("customer_id", "item_id", "ts", "price", "order_id").join(
        items.select("item_id", "category"), on="item_id", how="left"
    ).with_columns(pl.col("category").fill_null(""))
    ci = h.group_by("customer_id", "item_id").agg(
        pl.len().cast(pl.Float32).alias("ci_count"), pl.col("ts").max().alias("_ci_last")
    )
    cc = h.group_by("customer_id", "category").agg(
        pl.len().cast(pl.Float32).alias("cc_count"),
        pl.col("ts").max().alias("_cc_last"),
        pl.col("price").mean().cast(pl.Float32).alias("_cc_price"),
    )
    cu = h.group_by("customer_id").agg(
        pl.coalesce(pl.col("order_id"), pl.col("ts").dt.date().cast(pl.String)).n_unique().cast(pl.Float32)
        .alias("c_orders"),
        pl.len().cast(pl.Float32).alias("c_lines"),
        pl.col("ts").max().alias("_c_last"),
        pl.col("category").n_unique().cast(pl.Float32).alias("c_categories"),
    )
    out = (
        wide.join(items, on="item_id", how="left")
        .with_columns(pl.col("category").fill_null(""))
        .join(ci, on=["customer_id", "item_id"], how="left")
        .join(cc, on=["customer_id", "category"], how="left")
        .join(cu, on="customer_id", how="left")
        .join(stats.categories_, on="category", how="left")
        .with_columns(
            days("_ci_last").alias("ci_days_since"),
            days("_cc_last").alias("cc_days_since"),
            days("_c_last").alias("c_days_since"),
            pl.col("ci_count", "cc_count", "c_orders", "c_lines", "c_categories").fill_null(0.0),
        )
        .with_columns(
            (pl.col("ci_days_since") / pl.col("i_interval").clip(lower_bound=1.0)).alias("ci_due_ratio"),
            (pl.col("cc_count") / pl.col("c_lines").clip(lower_bound=1.0)).alias("cc_share"),
            (pl.col("i_price") / pl.col("_cc_price")).cast(pl.Float32).alias("price_rel"),
        )
        .with_columns((pl.col("cc_share") / pl.col("cat_share").clip(lower_bound=1e-6)).cast(pl.Float32).alias("cc_lift"))
    )
    return out


def to_matrix(frame: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Feature matrix (float32, NaN = missing) in ``names`` order; absent columns are all-NaN.

    One ``select`` + ``to_numpy`` rather than a conversion per column: per request that is the
    difference between ~0.1 ms and ~3 ms.
    """
    if not names:
        return np.zeros((frame.height, 0), np.float32)
    present = set(frame.columns)
    exprs = [
        (pl.col(c) if c in present else pl.lit(None)).cast(pl.Float32).fill_nan(None).alias(c) for c in names
    ]
    out = frame.select(exprs).to_numpy(order="c")
    return np.asarray(out, dtype=np.float32)

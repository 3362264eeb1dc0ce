"""``describe``: the summary numbers of a dataset (``recsys data stats``, bundle manifests, reports)."""

from __future__ import annotations

from typing import Any

import polars as pl

from recsys.dataset import Dataset

__all__ = ["describe"]


def describe(ds: Dataset) -> dict[str, Any]:
    """The facts a person checks first about a dataset: also recorded in bundles and reports."""
    p = ds.purchases
    per_customer = p.group_by("customer_id").agg(
        pl.col("order_id").n_unique().alias("orders"), pl.col("ts").dt.date().n_unique().alias("days")
    )
    visits = pl.when(pl.col("orders") > 0).then(pl.col("orders")).otherwise(pl.col("days"))
    repeat = per_customer.select((visits > 1).mean()).item() if per_customer.height else 0.0
    lo, hi = ds.date_range
    top = (
        p.join(ds.items.select("item_id", "category"), on="item_id", how="left")
        .group_by("category").len().sort("len", descending=True).head(10)
    )
    return {
        "source": ds.source,
        "interactions": ds.interactions.height,
        "purchases": p.height,
        "customers": ds.interactions["customer_id"].n_unique(),
        "items_in_catalogue": ds.items.height,
        "items_bought": p["item_id"].n_unique(),
        "categories": ds.items["category"].drop_nulls().n_unique(),
        "orders": p["order_id"].n_unique() if p["order_id"].null_count() < p.height else None,
        "date_min": str(lo), "date_max": str(hi),
        "repeat_buyer_share": round(float(repeat), 4),
        "top_categories": [{"category": c, "lines": n} for c, n in top.iter_rows()],
    }

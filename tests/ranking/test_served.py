"""The served list (candidates → ranker) on the synthetic shop recovers the planted cross-sell."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl

from recsys.bundle import Bundle


def test_last_order_trousers_gives_belts_or_shoes_in_top3_naming_that_order(synthetic_bundle_dir: Path) -> None:
    bundle = Bundle.load(synthetic_bundle_dir)
    h = bundle.hybrid
    cat = dict(zip(bundle.catalogue["item_id"].to_list(), bundle.catalogue["category"].to_list(), strict=True))
    hist = h.history.frame.with_columns(pl.col("item_id").replace_strict(cat, default=None).alias("category"))
    last = hist.filter(pl.col("ts") == pl.col("ts").max().over("customer_id"))
    trigger = last.filter((pl.col("category") == "trousers") & (pl.col("ts") > h.reference_time - timedelta(days=30)))
    customers = trigger["customer_id"].unique().sort().to_list()
    assert len(customers) >= 10
    recs = h.recommend(customers, 12).filter(pl.col("rank") <= 3)
    good = recs.filter(
        pl.col("item_id").replace_strict(cat, default=None).is_in(["belts", "shoes"])
        & (pl.col("reason_type") == "complements_category")
    ).join(trigger.select("customer_id", pl.col("item_id").alias("source_item_id"), pl.col("ts").alias("source_ts")),
           on=["customer_id", "source_item_id", "source_ts"], how="semi")  # the source is that order's trousers
    share = good["customer_id"].n_unique() / len(customers)
    assert share >= 0.75, f"{share:.0%} of {len(customers)} trouser buyers"


def test_batch_equals_per_customer(synthetic_bundle_dir: Path) -> None:
    h = Bundle.load(synthetic_bundle_dir).hybrid
    customers = h.history.customers.ids[:25].tolist()
    batch = h.recommend(customers, 8)
    for c in customers[:10]:
        one = h.recommend([c], 8)
        assert one["item_id"].to_list() == batch.filter(pl.col("customer_id") == c)["item_id"].to_list()

"""Baselines evaluated in every training run, with the same code on the same split.

Why here and not only in a notebook: any model's number means something only as a ratio to these,
measured in the same run.  Every baseline list is padded with (decayed) popularity so that all lists
are full, exactly like the served list — a missing slot would otherwise count as a free failure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from recsys.dataset import Dataset
from recsys.models.base import PAD_ID, Recommender
from recsys.models.popularity import Popularity

__all__ = ["pad_with_popular", "model_lists", "buy_again_then_popular"]


def pad_with_popular(lists: pl.DataFrame, customer_ids: Sequence[str], popular: Sequence[str], k: int) -> pl.DataFrame:
    """Fill every customer's list up to ``k`` with ``popular`` items not already in it."""
    pop = pl.DataFrame({"item_id": list(popular)}, schema={"item_id": pl.String}).with_row_index("_p")
    pad = (
        pl.DataFrame({"customer_id": list(customer_ids)}, schema={"customer_id": pl.String})
        .join(pop, how="cross")
        .join(lists.select("customer_id", "item_id"), on=["customer_id", "item_id"], how="anti")
        .with_columns((pl.col("_p").cast(pl.Int32) + 10_000).alias("rank"))
        .drop("_p")
    )
    both = pl.concat([lists.select("customer_id", "item_id", pl.col("rank").cast(pl.Int32)), pad.select("customer_id", "item_id", "rank")])
    return (
        both.sort("customer_id", "rank")
        .group_by("customer_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("customer_id").alias("rank"))
    )


def model_lists(
    model: Recommender, customer_ids: Sequence[str], k: int, popular: Sequence[str], *, exclude_bought: bool = False
) -> pl.DataFrame:
    """A single generator's top-``k`` (unknown customers get nothing from it), padded with popular."""
    customers = np.asarray(list(customer_ids), dtype=object)
    ids, _ = model.recommend(customers, k, exclude_bought=exclude_bought, on_unknown="empty")
    b, n = ids.shape
    frame = pl.DataFrame({
        "customer_id": np.repeat(customers, n).astype(str),
        "item_id": ids.reshape(-1).astype(str),
        "rank": np.tile(np.arange(1, n + 1, dtype=np.int32), b),
    }).filter(pl.col("item_id") != PAD_ID)
    return pad_with_popular(frame, customer_ids, popular, k)


def buy_again_then_popular(train: Dataset, customer_ids: Sequence[str], k: int, popular: Sequence[str]) -> pl.DataFrame:
    """The classic grocery baseline: the customer's own items by purchase count (then recency), then popular."""
    wanted = pl.Series(list(customer_ids), dtype=pl.String)
    own = (
        train.purchases.filter(pl.col("customer_id").is_in(wanted.implode()))
        .group_by("customer_id", "item_id")
        .agg(pl.len().alias("n"), pl.col("ts").max().alias("last"))
        .sort(["customer_id", "n", "last", "item_id"], descending=[False, True, True, False])
        .group_by("customer_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("customer_id").alias("rank"))
    )
    return pad_with_popular(own, customer_ids, popular, k)


def popular_items(model: Popularity, k: int, *, exclude: Sequence[str] = ()) -> list[str]:
    ids, _ = model.popular(k + len(exclude))
    drop = set(exclude)
    return [i for i in ids.tolist() if i and i not in drop][:k]

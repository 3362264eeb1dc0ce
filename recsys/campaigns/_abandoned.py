"""The abandoned-cart campaign: who left items in their cart, and what to mail them.

A cart is the customer's ``cart`` events — from the store (the service persists every event it
receives, in order) and from the data set's interactions, when it has cart rows — within
``strategy.cart_max_age_days`` before the run's ``now``.  An item is still *open* when the customer has
not bought it since they last put it in the cart (store purchases and the data set's, at any time
after: a purchase stamped after ``now`` still means it was bought), and it is in stock.  The cart is
*abandoned* when its newest open item went in at least ``strategy.cart_age_hours`` before ``now``: a
customer still filling their cart is not mailed yet.

The audience is narrowed to customers with an abandoned cart (every other audience filter still
applies; consent, suppression, erasure, frequency cap and holdout are the run's as for any campaign).
Picks: the open cart items first (newest first; reason ``abandoned_cart``, the item as its own source),
then their complements — items bought with them (``bought_with``) and bestsellers of their complement
categories (``complements_category``) — each explained by the cart item it comes from.  Use the
``email_cart`` placement (configs/placements.yaml): no upsell band and no category shuffle, so the cart
comes first.

Why the carts travel in the run's ``PickContext`` (``ctx.carts``) and not through the strategy's
purchase batches: they are store events, not purchases; the local engine reads them there, and a
strategy asked without them (``--engine ray`` does not ship them yet) says so instead of mailing nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from recsys.campaigns._config import Campaign
from recsys.campaigns._context import CANDIDATE_SCHEMA, PickContext, positions
from recsys.exceptions import ConfigError

if TYPE_CHECKING:
    from recsys.store import Store

__all__ = ["CART_SCHEMA", "abandoned_carts", "abandoned_cart_candidates", "carts_for"]

#: One row per open, in-stock cart item of an abandoned cart.
CART_SCHEMA: dict[str, Any] = {"customer_id": pl.String, "item_id": pl.String, "cart_ts": pl.Datetime("us"),
                               "cart_last_ts": pl.Datetime("us")}
_EVENTS = ("customer_id", "item_id", "ts")


def _of_kind(data: Any, store: Store | None, kind: str, since: datetime) -> pl.DataFrame:
    parts = [data.interactions.filter((pl.col("event") == kind) & (pl.col("ts") >= since)).select(_EVENTS)
             if "event" in data.interactions.columns else pl.DataFrame(schema=dict.fromkeys(_EVENTS, pl.String))]
    if store is not None:
        parts.append(store.events_of([kind], since=since).filter(pl.col("item_id") != "").select(_EVENTS))
    return pl.concat([p.with_columns(pl.col("ts").cast(pl.Datetime("us"))) for p in parts], how="vertical_relaxed")


def abandoned_carts(data: Any, store: Store | None, *, now: datetime, min_age_hours: float,
                    max_age_days: float) -> pl.DataFrame:
    """The open, in-stock items of every abandoned cart at ``now`` (``CART_SCHEMA``): ``cart_ts`` when the
    item last went in, ``cart_last_ts`` the customer's newest open item (the cart's age)."""
    since = now - timedelta(days=max_age_days)
    carts = (_of_kind(data, store, "cart", since).filter(pl.col("ts") <= now)
             .group_by("customer_id", "item_id").agg(pl.col("ts").max().alias("cart_ts")))
    bought = (_of_kind(data, store, "purchase", since)
              .group_by("customer_id", "item_id").agg(pl.col("ts").max().alias("bought_ts")))
    stock = data.items.select("item_id", (pl.col("in_stock").fill_null(True) if "in_stock" in data.items.columns
                                          else pl.lit(True)).alias("in_stock"))
    open_items = (carts.join(bought, on=["customer_id", "item_id"], how="left")
                  .filter(pl.col("bought_ts").is_null() | (pl.col("bought_ts") < pl.col("cart_ts")))
                  .join(stock, on="item_id").filter(pl.col("in_stock"))
                  .with_columns(pl.col("cart_ts").max().over("customer_id").alias("cart_last_ts")))
    cut = now - timedelta(hours=min_age_hours)
    return (open_items.filter(pl.col("cart_last_ts") <= cut)
            .select(list(CART_SCHEMA)).sort("customer_id", "cart_ts", "item_id", descending=[False, True, False]))


def carts_for(campaign: Campaign, data: Any, store: Store | None, now: datetime) -> pl.DataFrame | None:
    """The run's abandoned carts when ``campaign`` is an abandoned-cart campaign, else ``None``."""
    s = campaign.strategy
    if s.kind != "abandoned_cart":
        return None
    return abandoned_carts(data, store, now=now, min_age_hours=s.cart_age_hours, max_age_days=s.cart_max_age_days)


def abandoned_cart_candidates(ctx: PickContext, campaign: Campaign, ids: Sequence[str],
                              hist: pl.DataFrame) -> tuple[pl.DataFrame, None]:
    """The strategy: open cart items (scores in (2, 3]) ahead of their complements (scores in [0, 1])."""
    carts = getattr(ctx, "carts", None)
    if carts is None:
        raise ConfigError(f"{campaign.source}: strategy abandoned_cart needs the run's carts, which this engine "
                          "does not pass on (run it with --engine local)")
    s = campaign.strategy
    mine = (carts.join(positions(ids), on="customer_id").join(ctx.items.select("item_id", "_i", "_g"), on="item_id")
            .with_columns(((pl.lit(ctx.now, pl.Datetime("us")) - pl.col("cart_ts")).dt.total_seconds() / 3600.0)
                          .alias("age_h")))
    if mine.height == 0:
        return pl.DataFrame(schema=CANDIDATE_SCHEMA), None
    src = [pl.col("_i").alias("_src"), pl.col("cart_ts").alias("source_ts")]
    cart = mine.select("_c", "_i", (2.0 + 0.5 ** (pl.col("age_h") / 24.0)).alias("score"),
                       pl.lit("abandoned_cart").alias("reason_type"), *src).cast(CANDIDATE_SCHEMA)
    # items bought with a cart item (co-purchase neighbours; the best neighbour scores 1)
    nb = ctx.pickable_neighbours()
    bought_with = (mine.select("_c", "_i", *src).join(nb, on="_i")
                   .with_columns((0.9 * pl.col("nb_score") / pl.col("nb_score").max().over("_c")).alias("score"))
                   .select("_c", pl.col("nb_i").alias("_i"), "score", pl.lit("bought_with").alias("reason_type"),
                           "_src", "source_ts").cast(CANDIDATE_SCHEMA))
    # bestsellers of the cart items' complement categories
    edges = ctx.edges(s.top_complements)
    by_cat = (mine.select("_c", "_g", *src).join(edges.select("source_g", "target_g", "lift"), left_on="_g",
                                                 right_on="source_g")
              .join(ctx.bestsellers.filter(pl.col("cat_rank") <= s.per_category), left_on="target_g", right_on="_g")
              .with_columns((0.5 * pl.col("pop_norm") * pl.col("lift") / pl.col("lift").max().over("_c"))
                            .alias("score"))
              .select("_c", "_i", "score", pl.lit("complements_category").alias("reason_type"), "_src", "source_ts")
              .cast(CANDIDATE_SCHEMA))
    complements = ctx.pickable(pl.concat([bought_with, by_cat]), hist)
    both = pl.concat([cart, complements])
    # one row per (customer, item): the best (a cart item stays a cart item)
    best = both.sort(["_c", "_i", "score"], descending=[False, False, True]).unique(["_c", "_i"], keep="first")
    return best.sort("_c", "score", descending=[False, True]).select(list(CANDIDATE_SCHEMA)), None

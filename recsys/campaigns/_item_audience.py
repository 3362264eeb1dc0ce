"""Who is likely to buy one item soon: the category audience, sharpened by what is bought with the item.

Why not the category audience alone: "belts" ranks everyone who needs a belt; a merchandiser promoting
*one* belt wants first those whose own purchases are the ones that belt is bought with (its co-purchase
neighbours).  Why not co-purchase alone: most customers bought none of an item's few neighbours, and the
category propensity still orders them sensibly.  So ``item_propensity`` multiplies the two and leaves out
who already bought the item, unless its category is replenishable (they will need it again).
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from recsys.bundle import Bundle
from recsys.campaigns._audience import category_propensity
from recsys.exceptions import UnknownIdError

__all__ = ["item_propensity"]


def item_propensity(bundle: Bundle, item_id: str, *, n: int | None = None,
                    now: datetime | None = None) -> pl.DataFrame:
    """Customers ranked by how likely they are to buy ``item_id`` soon.

    ``score = category score × (1 + bought_with)``: the ``category_propensity`` of the item's category,
    and ``bought_with``, the best co-purchase score between the item and anything the customer bought
    (``CoPurchase.neighbours_frame``; 0 without that generator or a neighbour bought).  Customers who
    bought the item are left out unless its category is replenishable (``BuyAgain``).

    Returns the ``category_propensity`` columns plus ``item_id``, ``bought_with`` and
    ``bought_with_item_id`` (the purchase behind it), best first.  Unknown item → ``UnknownIdError``.
    """
    cat = bundle.catalogue.filter(pl.col("item_id") == item_id)
    if cat.height == 0:
        raise UnknownIdError(f"unknown item id {item_id!r} (not in the bundle's catalogue)")
    category = cat["category"][0]
    if category is None:
        raise UnknownIdError(f"item {item_id!r} has no category: no category audience to start from")
    now = now or bundle.hybrid.as_of
    base = category_propensity(bundle, category, now=now)
    hist = bundle.hybrid.history.frame.filter(pl.col("ts") < now).select("customer_id", "item_id")
    bought = hist.filter(pl.col("item_id") == item_id).select("customer_id").unique()
    ba = bundle.hybrid.buy_again
    replenishable = False
    if ba is not None:
        table = ba.replenishable_categories().filter(pl.col("category") == category)
        replenishable = bool(table.height and table["replenishable"][0])
    if not replenishable:
        base = base.join(bought, on="customer_id", how="anti")
    cp = bundle.hybrid.copurchase
    schema = {"customer_id": pl.String, "bought_with": pl.Float64, "bought_with_item_id": pl.String}
    link = pl.DataFrame(schema=schema)
    if cp is not None and item_id in cp.item_ids_:
        nb = cp.neighbours_frame(item_id).select(pl.col("neighbour_id").alias("item_id"),
                                                  pl.col("score").cast(pl.Float64).alias("bought_with"))
        if nb.height:
            top = nb["bought_with"].max()
            link = (hist.join(nb, on="item_id")
                    .with_columns(pl.col("bought_with") / top)  # 0..1: a multiplier next to the category's
                    .sort(["customer_id", "bought_with", "item_id"], descending=[False, True, False])
                    .unique("customer_id", keep="first", maintain_order=True)
                    .select("customer_id", "bought_with", pl.col("item_id").alias("bought_with_item_id")))
    out = (base.drop("rank").join(link, on="customer_id", how="left")
           .with_columns(pl.col("bought_with").fill_null(0.0))
           .with_columns((pl.col("score") * (1.0 + pl.col("bought_with"))).alias("score"),
                         pl.lit(item_id, pl.String).alias("item_id"))
           .sort(["score", "customer_id"], descending=[True, False]))
    if n is not None:
        out = out.head(n)
    return out.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("rank")).select(
        "customer_id", "rank", "item_id", "score", "affinity", "complement", "bought_with", "bought_with_item_id",
        "trigger_category", "trigger_item_id", "trigger_ts", "days_since_last_purchase", "bought_category_before",
    )

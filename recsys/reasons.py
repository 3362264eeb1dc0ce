"""Why an item is shown, in words: the one wording of every reason type, for the web, files and emails.

Why one module: the service's widgets, ``recsys recommend``'s file and every campaign's picks explain
their items to the same customers ("Because you bought *Slim chinos 12* on 3 May"); if each wrote its
own sentences, the email would contradict the page.  ``reason_text`` words one row (the service's
per-request path); ``with_reason_text`` adds the same words to a frame of lists, calling
``reason_text`` once per distinct (reason, source item, source date) so the two cannot drift.

The source date is the customer's purchase behind the reason (``source_ts``); a reason about a
source item without a date ("Often bought with …") does not name one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Final

import polars as pl

__all__ = ["REASON_TYPES", "item_names", "reason_text", "with_reason_text"]

#: Reasons that are about no particular purchase: one sentence each.
_PLAIN: Final[dict[str, str]] = {
    "similar_customers": "Customers like you bought this",
    "trending_in_category": "Trending in your categories",
    "popular": "Popular right now",
    "pinned": "Featured",
    "similar_items": "Similar item",
    "new_in_category": "New in a category you like",
    "winback": "Picked for you",
    "ranked": "Picked for you",
}
#: Reasons about a source purchase: (sentence with the purchase date, sentence without one).
_SOURCED: Final[dict[str, tuple[str, str]]] = {
    "complements_category": ("Because you bought {label} on {day}", "Goes well with {label}"),
    "bought_with": ("Often bought with {label}", "Often bought with {label}"),
    "buy_again": ("Buy again: you bought {label} on {day}", "Buy again: you bought {label}"),
    "replenish_due": ("Time to restock: you bought {label} on {day}", "Time to restock {label}"),
    "upsell": ("A step up from {label}, bought on {day}", "A step up from {label}"),
    "welcome": ("Bestsellers next to your first buy, {label}", "Bestsellers next to your first buy, {label}"),
    "abandoned_cart": ("Still in your cart: {label}", "Still in your cart: {label}"),
}
#: Every reason type with a wording (anything else has no text: ``None``).
REASON_TYPES: Final[tuple[str, ...]] = tuple(_PLAIN) + tuple(_SOURCED)


def reason_text(reason: str | None, source: str | None, when: datetime | date | None,
                names: Mapping[str, str | None]) -> str | None:
    """The sentence shown for one item: ``reason`` type, the ``source`` item behind it and when it was bought.

    ``names`` maps item ids to display names; an item is named ``"<name> (<id>)"`` where a name is
    known, by its id otherwise.  A sourced reason without a source falls back to its plain wording
    (``similar_items`` → "Similar item"), or ``None`` when it has none.

    >>> reason_text("buy_again", "A1", datetime(2024, 5, 3), {"A1": "Socks"})
    'Buy again: you bought Socks (A1) on 2024-05-03'
    >>> reason_text("popular", None, None, {})
    'Popular right now'
    """
    if reason is None:
        return None
    if reason in _SOURCED and source:
        name = names.get(source)
        label = f"{name} ({source})" if name else source
        dated, undated = _SOURCED[reason]
        return dated.format(label=label, day=f"{when:%Y-%m-%d}") if when else undated.format(label=label)
    return _PLAIN.get(reason)


def item_names(catalogue: pl.DataFrame) -> dict[str, str | None]:
    """``item_id → name`` from a catalogue frame (no ``name`` column: no names, items are named by id)."""
    if "name" not in catalogue.columns:
        return {}
    return dict(zip(catalogue["item_id"].cast(pl.String).to_list(), catalogue["name"].cast(pl.String).to_list(),
                    strict=True))


def with_reason_text(frame: pl.DataFrame, names: Mapping[str, str | None], *, reason: str = "reason_type",
                     source: str = "source_item_id", when: str = "source_ts",
                     out: str = "reason_text") -> pl.DataFrame:
    """``frame`` with an ``out`` column: ``reason_text`` of each row's ``reason``, ``source`` and ``when``.

    Missing ``source`` / ``when`` columns count as null.  The sentence is computed once per distinct
    (reason, source, date): a batch of 120k rows has a few thousand, so the cost is a join.
    """
    def col(name: str, dtype: pl.DataType) -> pl.Expr:
        return pl.col(name) if name in frame.columns else pl.lit(None, dtype)

    keys = frame.select(
        col(reason, pl.String()).cast(pl.String).alias("_r"),
        col(source, pl.String()).cast(pl.String).alias("_s"),
        col(when, pl.Datetime("us")).cast(pl.Date).alias("_d"),
    )
    distinct = keys.unique(maintain_order=True)
    texts = [reason_text(r, s, d, names) for r, s, d in distinct.iter_rows()]
    table = distinct.with_columns(pl.Series(out, texts, dtype=pl.String))
    joined = keys.join(table, on=["_r", "_s", "_d"], how="left", nulls_equal=True, maintain_order="left")
    return frame.with_columns(joined[out])

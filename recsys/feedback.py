""""Not interested" feedback: a customer dismisses an item, or a whole category, and is not shown it again
for a while — on the website and in campaign emails alike.

Why one module for both paths: the feedback is one fact (an event ``not_interested`` in the store's
log, ``item_id`` = the item, or ``item_id = ''`` and ``category`` = the category) with one rule: it holds
for ``days`` after the event's ``ts``, measured on the clock the path judges time by (the service's data
clock; a campaign's ``now``).  The web path keeps the live state per worker (``NotInterested``: folded
from the log like every event, loaded from the store when a model version is swapped in, because
feedback older than the model's data must still count) and turns it into the request's filters; the
email path turns the store's rows into (customer, item) pairs the run never picks (``email_pairs``),
handled like the re-send window, so fill and fallback respect them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from recsys.store import Store

__all__ = ["DEFAULT_DAYS", "NOT_INTERESTED", "NotInterested", "email_pairs", "feedback_counts", "fold_feedback",
           "load_feedback", "with_dismissed"]

NOT_INTERESTED = "not_interested"
#: How long a dismissal holds unless configured (``RECSYS_NOT_INTERESTED_DAYS``; a campaign's
#: ``not_interested_days``).
DEFAULT_DAYS = 90.0


@dataclass
class NotInterested:
    """Per customer, the latest dismissal time of each item and category (the web path's state)."""

    days: float = DEFAULT_DAYS
    items: dict[str, dict[str, datetime]] = field(default_factory=dict)
    categories: dict[str, dict[str, datetime]] = field(default_factory=dict)

    def fold(self, events: pl.DataFrame) -> set[str]:
        """Take the ``not_interested`` rows of a batch of events; returns the customers they concern."""
        if events.height == 0 or "event" not in events.columns:
            return set()
        rows = events.filter(pl.col("event") == NOT_INTERESTED)
        category = rows["category"] if "category" in rows.columns else pl.Series([None] * rows.height)
        touched: set[str] = set()
        for cid, item, cat, ts in zip(rows["customer_id"], rows["item_id"], category, rows["ts"], strict=True):
            table, key = (self.categories, cat) if cat else (self.items, item)
            if not key or ts is None:
                continue
            mine = table.setdefault(cid, {})
            if key not in mine or ts > mine[key]:
                mine[key] = ts
            touched.add(cid)
        return touched

    def blocked(self, customer_id: str | None, now: datetime) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(items, categories)`` the customer dismissed within ``days`` before ``now`` (sorted)."""
        if customer_id is None or (customer_id not in self.items and customer_id not in self.categories):
            return (), ()
        since = now - timedelta(days=self.days)
        return (tuple(sorted(k for k, t in self.items.get(customer_id, {}).items() if t > since)),
                tuple(sorted(k for k, t in self.categories.get(customer_id, {}).items() if t > since)))

    def filters(self, customer_id: str | None, filters: Any, now: datetime) -> Any:
        """The request's ``recsys.online.Filters`` plus this customer's dismissals (unchanged when none):
        the filters are part of the answer cache's key, so a new dismissal is a new answer."""
        items, cats = self.blocked(customer_id, now)
        if not items and not cats:
            return filters
        return replace(filters, exclude_item_ids=tuple(dict.fromkeys((*filters.exclude_item_ids, *items))),
                       exclude_categories=tuple(dict.fromkeys((*filters.exclude_categories, *cats))))

    def forget(self, customer_ids: Iterable[str]) -> None:
        """Drop these customers' dismissals (erasure)."""
        for cid in customer_ids:
            self.items.pop(cid, None)
            self.categories.pop(cid, None)


def fold_feedback(online: Any, events: pl.DataFrame) -> None:
    """Fold a batch of stored events' dismissals into a served model (``OnlineRecommender``) and drop
    the cached answers of the customers concerned (a category dismissal names no catalogue item, so
    the model's own fold-in would not)."""
    touched = online.not_interested.fold(events)
    if touched:
        with online.lock:
            for cid in touched:
                online.cache.drop_customer(cid)


def load_feedback(online: Any, store: Store, *, days: float, now: datetime | None = None) -> int:
    """Give a freshly loaded model the dismissals still in force (the store's, within ``days`` before
    its clock); returns how many rows it read."""
    online.not_interested.days = days
    clock = now or online.clock
    rows = store.events_of([NOT_INTERESTED], since=clock - timedelta(days=days))
    fold_feedback(online, rows)
    return rows.height


def email_pairs(store: Store | None, customer_ids: Sequence[str], items: pl.DataFrame, *, now: datetime,
                days: float | None) -> pl.DataFrame:
    """``customer_id, item_id`` pairs a campaign must not pick: the items, and every item of the
    categories, these customers dismissed within ``days`` before ``now`` (``None``: never expires).

    ``items`` is the catalogue (``item_id, category``).
    """
    empty = pl.DataFrame(schema={"customer_id": pl.String, "item_id": pl.String})
    if store is None or not customer_ids:
        return empty
    since = now - timedelta(days=days) if days is not None else None
    # (dismissals stamped after ``now`` count too: the customer said so, whatever the data's clock)
    rows = store.events_of([NOT_INTERESTED], since=since, customer_ids=customer_ids)
    if rows.height == 0:
        return empty
    direct = rows.filter(pl.col("category").is_null() & (pl.col("item_id") != "")).select("customer_id", "item_id")
    by_cat = (rows.filter(pl.col("category").is_not_null()).select("customer_id", "category").unique()
              .join(items.select("item_id", "category"), on="category").select("customer_id", "item_id"))
    return pl.concat([direct, by_cat]).unique().sort("customer_id", "item_id")


def with_dismissed(recent_sent: pl.DataFrame | None, store: Store | None, customer_ids: Sequence[str], data: Any,
                   now: datetime, days: float | None) -> tuple[pl.DataFrame | None, int]:
    """A campaign run's "never pick these (customer, item) pairs" — the re-send window's pairs — plus the
    eligible customers' dismissals (``email_pairs``), and how many dismissal pairs there are.

    Why through the re-send window: its pairs are removed from the candidates and, with ``fill``, from
    the fallback rows too, on the local and the Ray engine alike (the run's ``resend_removed`` then
    counts both kinds of removed candidates).
    """
    pairs = email_pairs(store, customer_ids, data.items, now=now, days=days)
    if pairs.height == 0:
        return recent_sent, 0
    if recent_sent is None:
        return pairs, pairs.height
    return pl.concat([recent_sent.select("customer_id", "item_id"), pairs]).unique(), pairs.height


def feedback_counts(store: Store, *, since: datetime | None = None) -> pl.DataFrame:
    """The KPI view of dismissals per ``source`` (widget or campaign; null: none given): ``events``,
    ``customers``, ``items`` and ``categories`` (dismissals of each kind)."""
    rows = store.events_of([NOT_INTERESTED], since=since)
    return (rows.group_by("source").agg(
        pl.len().alias("events"), pl.col("customer_id").n_unique().alias("customers"),
        pl.col("category").is_null().sum().alias("items"), pl.col("category").is_not_null().sum().alias("categories"))
        .sort("events", "source", descending=[True, False], nulls_last=True))

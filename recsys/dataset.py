"""``Dataset``: the three canonical frames travelling together, plus where they came from.

Why a container rather than three loose frames: models need the item catalogue next to the
interactions (categories, prices, stock) and bundles must record a fingerprint of exactly what
was fitted on; keeping them together makes "which data was this" answerable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import polars as pl

from recsys.schema import conform, empty_frame

__all__ = ["Dataset", "only_purchases", "purchases_only"]


@dataclass(frozen=True)
class Dataset:
    """Canonical interactions, items and customers (see ``recsys.schema``).

    Parameters
    ----------
    interactions, items, customers
        Frames in canonical schema (``conform`` is applied on construction).
    source
        Human-readable origin ("synthetic(seed=0)", a folder path, a database URI without password).
    consent_default
        What to assume for customers without an explicit ``email_consent`` value.
    """

    interactions: pl.DataFrame
    items: pl.DataFrame
    customers: pl.DataFrame = field(default_factory=lambda: empty_frame("customers"))
    source: str = "memory"
    consent_default: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "interactions", conform(self.interactions, "interactions"))
        object.__setattr__(self, "items", conform(self.items, "items"))
        object.__setattr__(self, "customers", conform(self.customers, "customers"))

    # ------------------------------------------------------------------ views
    @property
    def purchases(self) -> pl.DataFrame:
        """Interactions with ``event == 'purchase'``: what most generators learn from.

        Why the frame itself when every row is a purchase (checked once per dataset): a filter copies
        every row, and a training run asks for the purchases once per generator — at H&M size each
        copy is ~1.8 GB on top of the interactions.
        """
        only = self.__dict__.get("_only_purchases")
        if only is None:
            only = only_purchases(self.interactions["event"])
            object.__setattr__(self, "_only_purchases", only)
        return self.interactions if only else self.interactions.filter(pl.col("event") == "purchase")

    @property
    def has_categories(self) -> bool:
        """False when the shop has no category data: category models switch off and say so."""
        return self.items.height > 0 and self.items["category"].null_count() < self.items.height

    @property
    def date_range(self) -> tuple[datetime | None, datetime | None]:
        """First and last interaction time; ``(None, None)`` when there are no interactions."""
        ts = self.interactions["ts"]
        return (ts.min(), ts.max()) if ts.len() else (None, None)  # type: ignore[return-value]

    def with_interactions(self, interactions: pl.DataFrame) -> Dataset:
        """Same catalogue and customers, different interactions (used by splits and event fold-in)."""
        return replace(self, interactions=interactions)

    def without_customers(self, customer_ids: set[str] | list[str]) -> Dataset:
        """Drop every row of the given customers (erasure, consent filtering)."""
        ids = pl.Series(list(customer_ids), dtype=pl.String)
        return replace(
            self,
            interactions=self.interactions.filter(~pl.col("customer_id").is_in(ids)),
            customers=self.customers.filter(~pl.col("customer_id").is_in(ids)),
        )

    # ------------------------------------------------------------ fingerprint
    def fingerprint(self) -> dict[str, Any]:
        """Source, row counts, date range and a content hash: recorded in every model bundle.

        The hash covers the canonical columns of all three frames, so two loads of the same data
        from different sources (CSV vs SQLite) fingerprint identically.
        """
        h = hashlib.sha256()
        for frame in (self.interactions, self.items, self.customers):
            hashes = frame.hash_rows(seed=0)  # stable for one polars version (recorded in bundles)
            h.update(str(frame.columns).encode())
            h.update(hashes.sort().to_numpy().tobytes())
        lo, hi = self.date_range
        return {
            "source": self.source,
            "interactions": self.interactions.height,
            "items": self.items.height,
            "customers": self.interactions["customer_id"].n_unique(),
            "date_min": lo.isoformat() if lo else None,
            "date_max": hi.isoformat() if hi else None,
            "sha256": h.hexdigest(),
        }


def purchases_only(interactions: pl.DataFrame) -> pl.DataFrame:
    """Rows with ``event == 'purchase'`` (all rows when the frame has no ``event`` column).

    The frame itself when every row is a purchase: a filter copies every row (~1.8 GB per generator fit
    at H&M size, where the loaded interactions are all purchases)."""
    if "event" in interactions.columns and not only_purchases(interactions["event"]):
        return interactions.filter(pl.col("event") == "purchase")
    return interactions


def only_purchases(events: pl.Series) -> bool:
    """Every value is ``'purchase'`` (a null is not: a filter on ``== 'purchase'`` drops it)."""
    return events.null_count() == 0 and bool((events == "purchase").all())

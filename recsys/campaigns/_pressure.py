"""Who may be mailed: email consent, suppression, erasure and contact pressure (frequency cap and
re-send window), checked in that order (``EXCLUSION_REASONS``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from recsys.campaigns._config import Campaign
from recsys.dataset import Dataset
from recsys.store import Store

__all__ = ["EXCLUSION_REASONS", "exclusions", "resolve_consent"]

EXCLUSION_REASONS: tuple[str, ...] = (
    "consent", "suppression", "erased", "frequency_cap", "no_picks", "holdout", "over_budget",
)


def resolve_consent(customer_ids: Sequence[str], data: Dataset, store: Store | None) -> np.ndarray:
    """Email consent per customer: store record, else the data set's flag, else ``data.consent_default``."""
    frame = pl.DataFrame({"customer_id": pl.Series(list(customer_ids), dtype=pl.String)})
    own = data.customers.select("customer_id", pl.col("email_consent").cast(pl.Boolean).alias("_data")) \
        .unique("customer_id", keep="last")
    frame = frame.join(own, on="customer_id", how="left", maintain_order="left")
    if store is not None:
        stored = store.consent()
        if stored:
            st = pl.DataFrame({"customer_id": list(stored), "_store": list(stored.values())},
                              schema={"customer_id": pl.String, "_store": pl.Boolean})
            frame = frame.join(st, on="customer_id", how="left", maintain_order="left")
    if "_store" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Boolean).alias("_store"))
    consent = frame.select(pl.coalesce("_store", "_data", pl.lit(bool(data.consent_default))))
    return consent.to_series().to_numpy().astype(bool)


def exclusions(ids: list[str], data: Dataset, store: Store | None, campaign: Campaign, run_id: str,
               clock: datetime) -> tuple[np.ndarray, pl.DataFrame | None]:
    """Per customer the first exclusion reason among consent, suppression, erased, frequency cap
    (``""`` = eligible), and the recently sent (customer, item) pairs of the re-send window."""
    reason = np.full(len(ids), "", dtype=object)
    reason[~resolve_consent(ids, data, store)] = "consent"
    if store is None:
        return reason, None
    suppressed = store.suppressed()
    capped, recent_sent = _pressure(store, campaign, run_id, clock)
    checks = (
        ("suppression", np.fromiter((c in suppressed for c in ids), dtype=bool, count=len(ids))),
        ("erased", np.asarray(store.is_erased(ids), dtype=bool) if ids else np.zeros(0, dtype=bool)),
        ("frequency_cap", np.fromiter((c in capped for c in ids), dtype=bool, count=len(ids))),
    )
    for code, mask in checks:
        reason[(reason == "") & mask] = code
    return reason, recent_sent


def _pressure(store: Store | None, campaign: Campaign, run_id: str,
              clock: datetime) -> tuple[set[str], pl.DataFrame | None]:
    """(customers at the frequency cap, recently sent (customer, item) pairs or None) — own run id ignored."""
    cap, resend = campaign.frequency_cap, campaign.resend_window_days
    if store is None or (cap is None and resend is None):
        return set(), None
    days = max(cap.per_days if cap else 0, resend or 0)
    sends = store.sends(since=clock - timedelta(days=days)).filter(
        ~pl.col("control") & (pl.col("run_id") != run_id))
    capped: set[str] = set()
    if cap is not None:
        capped = set(
            sends.filter(pl.col("sent_at") >= clock - timedelta(days=cap.per_days))
            .group_by("customer_id").agg(pl.col("run_id").n_unique().alias("emails"))
            .filter(pl.col("emails") >= cap.max_emails)["customer_id"].to_list()
        )
    recent = None
    if resend is not None:
        recent = (sends.filter(pl.col("sent_at") >= clock - timedelta(days=resend))
                  .select("customer_id", "item_id").unique())
    return capped, recent

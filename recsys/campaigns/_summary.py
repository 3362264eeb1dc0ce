"""A run's summary: what it did and left out (JSON beside the picks) and the lines the CLI prints."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.campaigns._config import Campaign
from recsys.campaigns._context import PickContext
from recsys.campaigns._pressure import EXCLUSION_REASONS

__all__ = ["build_summary", "summary_lines", "summary_path"]

def summary_path(out: str | Path) -> Path:
    """Where the run summary goes beside ``out``: ``picks.parquet`` → ``picks.summary.json``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.summary.json")


def build_summary(campaign: Campaign, *, run_id: str, model_version: str | None, now: datetime,
                  clock: datetime, shard: tuple[int, int] | None, audience_total: int, audience: int,
                  reason: np.ndarray, picks: pl.DataFrame, controls: pl.DataFrame, ctx: PickContext,
                  resend_removed: int, timings: dict[str, float], seconds: float) -> dict[str, Any]:
    """The run summary as a JSON-ready dict: audience and exclusions by reason, picks per customer,
    category and reason mix, and timings (written beside the picks, printed by ``summary_lines``)."""
    excluded = {r: int((reason == r).sum()) for r in EXCLUSION_REASONS}
    per_customer = picks.group_by("customer_id").len()["len"]
    distribution = {str(k): int(v) for k, v in per_customer.value_counts().sort("len").iter_rows()}
    with_cat = picks.join(ctx.items.select("item_id", "category"), on="item_id", how="left")
    mix = with_cat.group_by("category").len().sort(["len", "category"], descending=[True, False],
                                                     nulls_last=True)
    reasons = picks.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    recipients = per_customer.len()
    return {
        "campaign": campaign.name,
        "source": campaign.source,
        "run_id": run_id,
        "model_version": model_version,
        "strategy": campaign.strategy.kind,
        "placement": campaign.placement,
        "now": now.isoformat(),
        "clock": clock.isoformat(timespec="seconds"),
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "audience_total": audience_total,
        "audience": audience,
        "excluded": excluded,
        "recipients": recipients,
        "controls": controls["customer_id"].n_unique(),
        "picks": picks.height,
        "picks_per_customer": {
            "mean": round(picks.height / recipients, 3) if recipients else 0.0,
            "min": int(per_customer.to_numpy().min()) if recipients else 0,
            "max": int(per_customer.to_numpy().max()) if recipients else 0,
            "distribution": distribution,
        },
        "category_mix": {str(c): int(n) for c, n in mix.iter_rows()},
        "reason_mix": {str(r): int(n) for r, n in reasons.iter_rows()},
        "resend_window_items_removed": resend_removed,
        "folded_in_purchases": ctx.folded_in,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "seconds": round(seconds, 3),
        "customers_per_second": round(audience / seconds, 1) if seconds > 0 else None,
    }


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The human-readable summary every run prints."""
    ex = summary["excluded"]
    mix = summary["category_mix"]
    top = ", ".join(f"{c} {n}" for c, n in list(mix.items())[:8]) + (" …" if len(mix) > 8 else "")
    ppc = summary["picks_per_customer"]
    lines = [
        f"campaign {summary['campaign']} · run {summary['run_id']} · model {summary['model_version']} · "
        f"now {summary['now']}" + (f" · shard {summary['shard']}" if summary.get("shard") else ""),
        f"audience {summary['audience']:,}" + (f" (of {summary['audience_total']:,} before sharding)"
                                                 if summary.get("shard") else ""),
        "left out: " + ", ".join(f"{r.replace('_', ' ')} {ex[r]:,}" for r in EXCLUSION_REASONS),
        f"recipients {summary['recipients']:,} · controls {summary['controls']:,} · "
        f"picks {summary['picks']:,} "
        f"({ppc['mean']} per customer, min {ppc['min']}, max {ppc['max']})",
        f"category mix: {top or '-'}",
    ]
    if summary.get("resend_window_items_removed"):
        lines.append(f"re-send window removed {summary['resend_window_items_removed']:,} candidate items")
    if "logged_rows" in summary:
        lines.append(f"send log: {summary['logged_rows']:,} rows written"
                     + (f", {summary['already_logged_rows']:,} already logged (same run id)"
                        if summary.get("already_logged_rows") else ""))
    lines.append(f"{summary['seconds']:.2f}s ({summary['customers_per_second'] or 0:,.0f} customers/s)")
    return lines

"""The report's relationship pictures: retention by first-purchase cohort (a heatmap) and the KPI trends.

Why in the model report: the engine exists to turn one-time buyers into repeat customers; the ranking
metrics say whether the lists are good, these say whether the customer base is getting better — the
cohort triangle (does each month's intake come back?) and repeat rate, churn, AOV and average CLV per
month, for the shop and per value segment.  Drawn from the bundle's ``relationship`` and ``cohorts``
tables (``recsys.segments.relationship_tables``, computed at training), like every other chart here.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from recsys.reporting._content import ReportContent
from recsys.reporting._figures import Image, _png, _style

__all__ = ["cohort_heatmap", "kpi_trends"]

_MAX_OFFSET = 12
_SEGMENT_COLOURS = {"most_valuable": "#0072B2", "potential": "#E69F00", "low_value": "#CC79A7"}


def cohort_heatmap(content: ReportContent) -> Image | None:
    """Rows = first-purchase month (with its size), columns = months after, cell = share buying then."""
    cohorts = content.cohorts
    if cohorts is None or cohorts.height == 0:
        return None
    c = cohorts.filter((pl.col("offset") >= 1) & (pl.col("offset") <= _MAX_OFFSET))
    if c.height == 0:
        return None
    rows = cohorts.select("cohort", "cohort_size").unique().sort("cohort")
    offsets = list(range(1, int(c["offset"].cast(pl.Int64).max() or 1) + 1))  # type: ignore[arg-type]
    grid = np.full((rows.height, len(offsets)), np.nan)
    index = {d: i for i, d in enumerate(rows["cohort"].to_list())}
    for cohort, offset, retention in c.select("cohort", "offset", "retention").iter_rows():
        grid[index[cohort], offset - 1] = retention
    fig = Figure(figsize=(1.6 + 0.62 * len(offsets), 1.2 + 0.34 * rows.height), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="Blues", vmin=0.0, vmax=max(0.05, float(np.nanmax(grid))),
                      aspect="auto")
    top = np.nanmax(grid)
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 * top else "#222222")
    ax.set_xticks(range(len(offsets)), [f"+{o}" for o in offsets])
    ax.set_yticks(range(rows.height), [f"{d:%Y-%m} (n={n:,})" for d, n in rows.iter_rows()])
    ax.set_xlabel("months after the first purchase", fontsize=9)
    ax.tick_params(labelsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the cohort buying")
    first = c.filter(pl.col("offset") == 1)
    mean1 = float(first["retention"].mean() or 0.0)  # type: ignore[arg-type]
    alt = (f"Heatmap of retention by first-purchase month for {rows.height} cohorts over up to "
           f"{len(offsets)} months; on average {100 * mean1:.0f} % of a cohort buys again the month after; "
           + "; ".join(f"{d:%Y-%m}: {100 * v:.0f} %" for d, v in first.select("cohort", "retention").iter_rows())
           + " one month after.")
    caption = ("Retention by first-purchase cohort: each row is the customers whose first order fell in that "
               "month, each cell the share of them ordering again k months later (percent).")
    return Image("cohorts", _png(fig), alt, caption)


_PANELS = (("repeat_purchase_rate", "repeat-purchase rate (≥ 2 orders, cumulative)", True),
           ("churn_rate", "churn rate (alive at start, lapsed at end)", True),
           ("aov", "average order value", False),
           ("avg_clv", "average CLV to date (revenue per customer)", False))


def kpi_trends(content: ReportContent) -> Image | None:
    """Four small multiples: the shop's line (thick) and each value segment's (thin) per month."""
    rel = content.relationship
    if rel is None or rel.height == 0:
        return None
    shop = rel.filter(pl.col("grouping") == "all").sort("period")
    by_value = rel.filter(pl.col("grouping") == "value_segment")
    fig = Figure(figsize=(10, 6.4), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    alt_parts = []
    for ax, (column, title, share) in zip(axes, _PANELS, strict=True):
        scale = 100.0 if share else 1.0
        for segment in sorted(set(by_value["segment"].drop_nulls().to_list())):
            part = by_value.filter(pl.col("segment") == segment).sort("period")
            ax.plot(part["period"], part[column] * scale, linewidth=1.1, alpha=0.85, marker=".",
                    color=_SEGMENT_COLOURS.get(segment, "#999999"), label=segment.replace("_", " "))
        ax.plot(shop["period"], shop[column] * scale, linewidth=2.4, color="#000000", label="whole shop")
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel("%" if share else "currency", fontsize=9)
        values = shop.filter(pl.col(column).is_not_null())
        if values.height:
            a, b = values.row(0, named=True), values.row(-1, named=True)
            unit = " %" if share else ""
            alt_parts.append(f"{title}: {a[column] * scale:,.1f}{unit} in {a['period']:%Y-%m} → "
                             f"{b[column] * scale:,.1f}{unit} in {b['period']:%Y-%m}")
    for ax in axes[2:]:
        ax.tick_params(axis="x", labelrotation=45)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), frameon=False, fontsize=9)
    _style(fig)
    alt = "Four line charts per month, the whole shop and each value segment: " + "; ".join(alt_parts) + "."
    caption = ("Relationship KPIs per month: repeat-purchase rate, churn rate (no order for 90 days), AOV and "
               "average CLV to date; thick = whole shop, thin = today's value segments.")
    return Image("kpi_trends", _png(fig), alt, caption)

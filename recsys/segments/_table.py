"""The per-customer segment table campaigns select from, and its summary by segment.

Why one table: a campaign is a filter on it ("potential customers, repeat stage, high churn risk,
expected value above X"), and the same columns feed ranking features and business rules.  Fitted
churn / CLV models are passed in rather than trained here, so the caller decides (and reports) the
time split they were validated on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import polars as pl

from recsys.dataset import Dataset
from recsys.exceptions import ConfigError
from recsys.segments._churn import ChurnModel
from recsys.segments._clv import CLVModel
from recsys.segments._lifecycle import LIFECYCLE_STAGES, lifecycle_from_lines
from recsys.segments._lines import purchase_lines, resolve_now
from recsys.segments._rfm import VALUE_SEGMENTS, rfm_from_lines

__all__ = ["CHURN_BANDS", "SEGMENT_COLUMNS", "segments", "summarize"]

CHURN_BANDS: Final[tuple[str, ...]] = ("low", "medium", "high")

SEGMENT_COLUMNS: Final[tuple[str, ...]] = (
    "customer_id", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
    "value_segment", "lifecycle", "churn_risk", "churn_band", "expected_clv",
)


def segments(
    data: Dataset,
    *,
    now: datetime | None = None,
    churn: ChurnModel | None = None,
    clv: CLVModel | None = None,
    bins: int = 5,
    churn_bands: tuple[float, float] = (0.3, 0.6),
    lifecycle_options: Mapping[str, Any] | None = None,
    scores: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per customer: RFM, value segment, lifecycle stage, churn risk and expected value.

    Parameters
    ----------
    data
        The shop; purchases after ``now`` are ignored.
    now
        Reference time.  Default: the last purchase in the data.
    churn, clv
        Fitted models; when omitted, ``churn_risk``/``churn_band`` resp. ``expected_clv`` are null.
    bins
        RFM score levels (see ``rfm``).
    churn_bands
        ``(a, b)``: risk < a is ``"low"``, a ≤ risk < b ``"medium"``, ≥ b ``"high"``.  Absolute
        probabilities, so a band means the same in every shop (a grocery will have few "high").
    lifecycle_options
        Keyword thresholds forwarded to ``lifecycle`` (``new_days``, ``lapsed_days``, …).
    scores
        ``customer_id, churn_risk, expected_clv`` computed elsewhere (``recsys.engines.segments``
        scores blocks of customers on a cluster); replaces ``churn`` and ``clv``.  The RFM scores and
        lifecycle stages, which need every customer, are computed here either way.

    Returns
    -------
    pl.DataFrame
        The columns of ``SEGMENT_COLUMNS``, sorted by ``customer_id``; ``expected_clv`` is spend over
        the CLV model's ``horizon_days``.
    """
    lo, hi = churn_bands
    if not 0.0 <= lo <= hi <= 1.0:
        raise ConfigError(f"The 'churn_bands' parameter of segments must be (a, b) with 0 ≤ a ≤ b ≤ 1. "
                          f"Got {churn_bands!r} instead.")
    lines = purchase_lines(data)
    now = resolve_now(lines, now)
    table = rfm_from_lines(lines, now, bins).join(
        lifecycle_from_lines(lines, now, **dict(lifecycle_options or {})).select("customer_id", "lifecycle"),
        on="customer_id", how="left",
    )
    if scores is not None:
        table = table.join(scores.select("customer_id", "churn_risk", "expected_clv"), on="customer_id",
                           how="left")
    else:
        if churn is not None:
            table = table.join(churn.predict_proba(data, now=now), on="customer_id", how="left")
        else:
            table = table.with_columns(pl.lit(None, pl.Float64).alias("churn_risk"))
        if clv is not None:
            table = table.join(clv.predict(data, now=now), on="customer_id", how="left")
        else:
            table = table.with_columns(pl.lit(None, pl.Float64).alias("expected_clv"))
    risk = pl.col("churn_risk")
    band = (
        pl.when(risk.is_null()).then(pl.lit(None, pl.String))
        .when(risk < lo).then(pl.lit("low"))
        .when(risk < hi).then(pl.lit("medium"))
        .otherwise(pl.lit("high"))
        .alias("churn_band")
    )
    return table.with_columns(band).select(list(SEGMENT_COLUMNS)).sort("customer_id")


_ORDER: Final[dict[str, tuple[str, ...]]] = {
    "value_segment": VALUE_SEGMENTS,
    "lifecycle": LIFECYCLE_STAGES,
    "churn_band": CHURN_BANDS,
}


def summarize(table: pl.DataFrame, by: str = "value_segment") -> pl.DataFrame:
    """Customers and revenue per group: what a campaign planner looks at first.

    Parameters
    ----------
    table
        Output of ``segments`` (or ``rfm``: needs ``customer_id``, ``monetary`` and ``by``).
    by
        The grouping column: ``value_segment``, ``lifecycle``, ``churn_band`` or any other column.

    Returns
    -------
    pl.DataFrame
        ``by, customers, customer_share, revenue, revenue_share`` plus ``mean_churn_risk`` and
        ``expected_clv`` (summed) when the table has those columns filled.  Known groupings list every label
        in their canonical order, with zeros for empty groups.
    """
    if by not in table.columns:
        raise ConfigError(f"The 'by' parameter of summarize must be a column of the table "
                          f"({', '.join(table.columns)}). Got {by!r} instead.")
    aggs = [pl.len().cast(pl.Int64).alias("customers"), pl.col("monetary").sum().alias("revenue")]
    extra = [
        c for c in ("churn_risk", "expected_clv") if c in table.columns and table[c].null_count() < table.height
    ]
    if "churn_risk" in extra:
        aggs.append(pl.col("churn_risk").mean().alias("mean_churn_risk"))
    if "expected_clv" in extra:
        aggs.append(pl.col("expected_clv").sum().alias("expected_clv"))
    grouped = table.group_by(by).agg(aggs)
    if by in _ORDER:
        labels = pl.DataFrame({by: list(_ORDER[by])}, schema={by: table.schema[by]})
        extra_labels = grouped.filter(~pl.col(by).is_in(labels[by].implode()) & pl.col(by).is_not_null())
        grouped = pl.concat([
            labels.join(grouped, on=by, how="left", maintain_order="left"),
            extra_labels.sort(by),
            grouped.filter(pl.col(by).is_null()),
        ], how="vertical_relaxed").with_columns(
            pl.col("customers").fill_null(0), pl.col("revenue").fill_null(0.0)
        )
    else:
        grouped = grouped.sort(by, nulls_last=True)
    n, revenue = max(int(table.height), 1), float(table["monetary"].sum()) if table.height else 0.0
    cols = [
        pl.col(by), "customers", (pl.col("customers") / n).alias("customer_share"), "revenue",
        (pl.col("revenue") / revenue if revenue > 0 else pl.lit(0.0)).alias("revenue_share"),
    ]
    if "churn_risk" in extra:
        cols.append("mean_churn_risk")
    if "expected_clv" in extra:
        cols.append("expected_clv")
    return grouped.select(cols)

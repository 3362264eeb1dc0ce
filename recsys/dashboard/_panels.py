"""The customer-side panels of the dashboard: value segments, lifecycle flow, the category-complement map.

Why here and not in the page: a marketer's numbers must be the ones ``recsys segments`` prints and the
campaigns select on, so every panel calls the same functions (``recsys.segments.segments`` /
``summarize``, ``lifecycle``, ``CategoryComplements.graph_frame``) and only reshapes their output into
JSON-ready rows (plain ``str``/``int``/``float``/``None``; NaN becomes ``None``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from recsys.dataset import Dataset
from recsys.models.category_complements import CategoryOverride
from recsys.segments import LIFECYCLE_STAGES, lifecycle, segments, summarize

__all__ = ["segments_panel", "lifecycle_panel", "complements_panel", "json_rows", "NOT_YET"]

#: The lifecycle "from" label of customers who had not bought anything yet at the earlier date.
NOT_YET = "not_yet_customer"


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def json_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``frame`` as dicts of JSON-ready values (non-finite floats → ``None``, times → ISO)."""
    return [{k: _clean(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]


def segments_panel(data: Dataset, *, now: datetime | None = None) -> dict[str, Any]:
    """Customers and revenue per RFM value segment and per lifecycle stage, as of ``now``.

    Returns
    -------
    dict
        ``now``, ``customers``, ``revenue``, ``value_segments`` (rows of ``summarize(by="value_segment")``
        plus ``mean_monetary``, ``mean_frequency``, ``mean_recency_days``) and ``lifecycle`` (rows of
        ``summarize(by="lifecycle")``).
    """
    table = segments(data, now=now)
    value = summarize(table, "value_segment").join(
        table.group_by("value_segment").agg(
            pl.col("monetary").mean().alias("mean_monetary"), pl.col("frequency").mean().alias("mean_frequency"),
            pl.col("recency_days").mean().alias("mean_recency_days")),
        on="value_segment", how="left", maintain_order="left")
    stages = summarize(table, "lifecycle")
    as_of = now or (data.purchases["ts"].max() if data.purchases.height else None)
    return {
        "now": _clean(as_of),
        "customers": int(table.height),
        "revenue": float(table["monetary"].sum()) if table.height else 0.0,
        "value_segments": json_rows(value.rename({"value_segment": "segment"})),
        "lifecycle": json_rows(stages.rename({"lifecycle": "stage"})),
    }


def lifecycle_panel(data: Dataset, *, now: datetime | None = None, flow_days: float = 30.0) -> dict[str, Any]:
    """Where customers moved between lifecycle stages over the last ``flow_days`` days.

    Stages are computed twice with the same rules (``recsys.segments.lifecycle``): as of ``now`` and as
    of ``now - flow_days``; a customer without a purchase at the earlier date comes from ``NOT_YET``.

    Returns
    -------
    dict
        ``now``, ``before`` (ISO times), ``stages`` (canonical order), ``counts`` (``stage, now, before``),
        and ``transitions`` (``from, to, customers``: every non-empty pair, stayed-put included).
    """
    if data.purchases.height == 0:
        return {"now": None, "before": None, "stages": list(LIFECYCLE_STAGES), "counts": [], "transitions": []}
    at = now or data.purchases["ts"].max()
    assert isinstance(at, datetime)
    before = at - timedelta(days=flow_days)
    cur = lifecycle(data, now=at).select("customer_id", pl.col("lifecycle").alias("to"))
    old = lifecycle(data, now=before).select("customer_id", pl.col("lifecycle").alias("from"))
    moves = cur.join(old, on="customer_id", how="left").with_columns(pl.col("from").fill_null(NOT_YET))
    transitions = (moves.group_by("from", "to").agg(pl.len().cast(pl.Int64).alias("customers"))
                   .sort("customers", "from", "to", descending=[True, False, False]))
    stages = list(LIFECYCLE_STAGES)
    now_counts = dict(cur.group_by("to").len().iter_rows())
    old_counts = dict(old.group_by("from").len().iter_rows())
    counts = [{"stage": s, "now": int(now_counts.get(s, 0)), "before": int(old_counts.get(s, 0))} for s in stages]
    return {"now": _clean(at), "before": _clean(before), "flow_days": flow_days, "stages": stages,
            "counts": counts, "transitions": json_rows(transitions)}


def _override_rows(overrides: Mapping[str, CategoryOverride] | None) -> list[dict[str, Any]]:
    """The merchandiser's overrides as ``source, target, action (pin|add|remove), lift`` rows."""
    rows: list[dict[str, Any]] = []
    for src, o in (overrides or {}).items():
        rows += [{"source": src, "target": t, "action": "pin", "lift": None} for t in o.pin]
        rows += [{"source": src, "target": t, "action": "add", "lift": float(v)} for t, v in o.add]
        rows += [{"source": src, "target": t, "action": "remove", "lift": None} for t in o.remove]
    return rows


def complements_panel(model: Any, *, overrides: Mapping[str, CategoryOverride] | None = None,
                      overrides_source: str | Path | None = None, top: int = 5) -> dict[str, Any]:
    """The category-complement map the served model uses, with the overrides file beside it.

    Parameters
    ----------
    model
        The bundle's fitted ``CategoryComplements`` (``None``: the shop has no categories or the bundle
        was trained without it; the panel then says so).
    overrides
        The overrides file as ``recsys.models.category_complements.load_overrides`` parses it, shown whether or not the served
        model was fitted with it: ``in_effect`` says, per override, whether the served graph obeys it.
    top
        Edges per source category in ``edges``.

    Returns
    -------
    dict
        ``available``, ``categories``, ``edges`` (``source, target, rank, lift, support, origin, pinned``)
        and ``overrides`` (``source, target, action, lift, in_effect``).
    """
    rows = _override_rows(overrides)
    if model is None:
        return {"available": False, "reason": "the served model has no category-complement generator",
                "categories": [], "edges": [], "overrides": rows, "overrides_source": _clean_src(overrides_source)}
    graph = model.graph_frame()
    edges = graph.filter(pl.col("rank") <= top).sort("source", "rank").select(
        "source", "target", "rank", "lift", "support", "origin", "pinned")
    present = {(s, t): (o, p) for s, t, o, p in graph.select("source", "target", "origin", "pinned").iter_rows()}
    for r in rows:
        edge = present.get((r["source"], r["target"]))
        if r["action"] == "remove":
            r["in_effect"] = edge is None
        elif r["action"] == "pin":
            r["in_effect"] = edge is not None and bool(edge[1])
        else:
            r["in_effect"] = edge is not None
    return {"available": True, "categories": sorted(str(c) for c in model.categories_),
            "edges": json_rows(edges), "overrides": rows, "overrides_source": _clean_src(overrides_source)}


def _clean_src(src: str | Path | None) -> str | None:
    return None if src is None else Path(src).name

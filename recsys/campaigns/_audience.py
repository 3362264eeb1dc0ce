"""Who a campaign is for: audience filters from the campaign file, and a propensity ranking per category.

Two different questions:

* ``build_audience`` answers "who matches this campaign's rules" (bought trousers in the last 30
  days, is a most-valuable customer at risk of churning, is on this list) — a set, AND of filters.
* ``category_propensity`` answers "who is most likely to buy belts soon" — a ranking for marketers who
  want the best N customers for a category push (``recsys audience --category belts --n 5000``).
  It multiplies three signals the bundle already learned: the customer's **category affinity**
  (decayed share of their purchases in the category, shrunk toward the shop average, so non-buyers
  get a small prior rather than zero), the **complement graph** (a recent purchase of a category
  whose complements include the target — trousers bought last week make belts likely now) and
  **recency** of activity (a customer who has not shopped for a year is unlikely to buy this week).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from recsys.bundle import Bundle
from recsys.campaigns._config import Campaign
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError, SchemaError, UnknownIdError

__all__ = ["build_audience", "category_propensity", "read_customer_ids", "segment_frame"]

_SECONDS_PER_DAY = 86_400.0
#: Half-life (days) of the activity-recency factor of ``category_propensity``.
ACTIVITY_HALF_LIFE_DAYS = 60.0


def read_customer_ids(path: str | Path) -> list[str]:
    """Ids from a text file (one per line) or a CSV/Parquet file with ``customer_id``; unique, in order."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"customers file not found: {path}")
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pl.read_csv(path, infer_schema=False)
    else:
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        return list(dict.fromkeys(ids))
    if "customer_id" not in frame.columns:
        raise SchemaError(f"{path}: no 'customer_id' column (columns: {', '.join(frame.columns)})",
                          source=str(path), column="customer_id")
    return frame["customer_id"].cast(pl.String).drop_nulls().unique(maintain_order=True).to_list()


def segment_frame(data: Dataset, *, now: datetime, churn: bool = False) -> pl.DataFrame:
    """``recsys.segments.segments`` as of ``now`` (purchases before it only), imported lazily.

    With ``churn=True`` a ``ChurnModel`` is fitted on the same purchases first, so ``churn_band`` is
    filled (without it the band is null and a churn-band audience would be empty).
    """
    try:
        from recsys.segments import ChurnModel, segments
    except ImportError as exc:
        raise ConfigError(f"segment/lifecycle/churn_band audiences need recsys.segments, which is not "
                          f"available ({exc}); pass a segments frame instead") from None
    past = data.with_interactions(data.interactions.filter(pl.col("ts") < now))
    model = ChurnModel().fit(past) if churn else None
    return segments(past, now=now, churn=model)


def build_audience(
    campaign: Campaign,
    data: Dataset,
    *,
    now: datetime,
    segments: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Customers matching every audience filter of ``campaign``: a frame ``customer_id`` (sorted).

    Parameters
    ----------
    campaign
        The campaign (its ``audience`` block).
    data
        The data set: customers, purchases and item categories.
    now
        ``bought_category.within_days`` counts back from here (purchases at or after ``now`` do not count).
    segments
        The ``recsys.segments.segments`` frame (``customer_id, value_segment, lifecycle, churn_band``);
        computed from ``data`` when needed and not given.

    Raises
    ------
    ConfigError
        An unknown category, a missing customers file, or segments unavailable — naming the campaign
        file and field.
    """
    aud = campaign.audience
    sets: list[pl.Series] = []
    if aud.all_customers:
        everyone = pl.concat([data.customers["customer_id"], data.purchases["customer_id"]]).unique()
        sets.append(everyone)
    if aud.bought_category is not None:
        bc = aud.bought_category
        cats = set(data.items["category"].drop_nulls().unique().to_list())
        if bc.category not in cats:
            raise campaign.error("audience.bought_category.category",
                                 f"unknown category {bc.category!r}; known: {_known(cats)}")
        in_cat = data.items.filter(pl.col("category") == bc.category).select("item_id")
        buyers = (
            data.purchases
            .filter((pl.col("ts") >= now - timedelta(days=bc.within_days)) & (pl.col("ts") < now))
            .join(in_cat, on="item_id", how="semi")["customer_id"].unique()
        )
        sets.append(buyers)
    if aud.needs_segments:
        seg = segments if segments is not None else segment_frame(data, now=now, churn=bool(aud.churn_band))
        columns = (("segment", "value_segment"), ("lifecycle", "lifecycle"), ("churn_band", "churn_band"))
        for field, column in columns:
            wanted = getattr(aud, field)
            if not wanted:
                continue
            if column not in seg.columns:
                raise SchemaError(f"segments frame has no '{column}' column (needed by audience.{field}; "
                                  f"columns: {', '.join(seg.columns)})", source="segments", column=column)
            chosen = seg.filter(pl.col(column).cast(pl.String).is_in(wanted))
            sets.append(chosen["customer_id"].cast(pl.String))
    if aud.customers_file is not None:
        try:
            sets.append(pl.Series(read_customer_ids(aud.customers_file), dtype=pl.String))
        except (ConfigError, SchemaError) as exc:
            raise campaign.error("audience.customers_file", str(exc)) from None
    ids = sets[0].cast(pl.String).unique()
    for other in sets[1:]:
        ids = ids.filter(ids.is_in(other.cast(pl.String).implode()))
    return ids.drop_nulls().sort().alias("customer_id").to_frame()


def _known(values: set[str], limit: int = 12) -> str:
    shown = sorted(values)[:limit]
    return ", ".join(shown) + (f", … ({len(values)} in all)" if len(values) > limit else "")


def category_propensity(
    bundle: Bundle,
    category: str,
    *,
    n: int | None = None,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Customers ranked by how likely they are to buy from ``category`` soon.

    ``score = affinity × (1 + complement) × activity`` where

    * ``affinity`` — the customer's decayed share of purchases in ``category``, shrunk toward the
      shop's share (``CategoryAffinity``); customers who never bought it get the prior alone;
    * ``complement`` — ``max`` over the customer's purchases of a category ``S`` with an edge
      ``S → category`` in the complement graph of ``lift(S → category) × 0.5^(age / (window / 2))``,
      ignoring triggers already followed by a purchase of ``category`` (fulfilled);
    * ``activity`` — ``0.5^(days since the customer's last purchase / 60)``.

    Parameters
    ----------
    bundle
        A loaded bundle (its history, affinity and complement generators).
    category
        Target category; unknown → ``UnknownIdError``.
    n
        Keep the best ``n`` customers (``None``: everyone with history).
    now
        Reference time (default: the bundle's reference time).

    Returns
    -------
    pl.DataFrame
        ``customer_id, rank, score, affinity, complement, trigger_category, trigger_item_id,
        trigger_ts, days_since_last_purchase, bought_category_before``, best first.
    """
    hybrid = bundle.hybrid
    now = now or hybrid.as_of
    cats = set(bundle.catalogue["category"].drop_nulls().unique().to_list())
    if category not in cats:
        raise UnknownIdError(f"unknown category {category!r}; known: {_known(cats)}")
    item_cat = bundle.catalogue.select("item_id", "category").unique("item_id", keep="first")
    hist = hybrid.history.frame.filter(pl.col("ts") < now).join(item_cat, on="item_id", how="left")
    if hist.height == 0:
        return _empty_propensity()
    age = (pl.lit(now, pl.Datetime("us")) - pl.col("ts")).dt.total_seconds() / _SECONDS_PER_DAY

    per_customer = hist.group_by("customer_id").agg(
        pl.col("ts").max().alias("last_ts"),
        (pl.col("category") == category).any().alias("bought_category_before"),
    ).with_columns(((pl.lit(now, pl.Datetime("us")) - pl.col("last_ts")).dt.total_seconds()
                    / _SECONDS_PER_DAY).alias("days_since_last_purchase"))

    affinity = _affinity(bundle, category, per_customer["customer_id"])

    comp = _complement_triggers(bundle, category, hist, age)
    out = (
        per_customer.join(affinity, on="customer_id", how="left")
        .join(comp, on="customer_id", how="left")
        .with_columns(pl.col("affinity").fill_null(0.0), pl.col("complement").fill_null(0.0))
        .with_columns(
            (pl.col("affinity") * (1.0 + pl.col("complement"))
             * 0.5 ** (pl.col("days_since_last_purchase") / ACTIVITY_HALF_LIFE_DAYS)).alias("score")
        )
        .sort(["score", "customer_id"], descending=[True, False])
    )
    if n is not None:
        out = out.head(n)
    return out.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("rank")).select(
        "customer_id", "rank", "score", "affinity", "complement", "trigger_category", "trigger_item_id",
        "trigger_ts", "days_since_last_purchase", "bought_category_before",
    )


def _affinity(bundle: Bundle, category: str, customer_ids: pl.Series) -> pl.DataFrame:
    """Posterior category share per customer (``CategoryAffinity``); 0 when the generator is absent."""
    aff = bundle.hybrid.category_affinity
    ids = customer_ids.to_list()
    if aff is None or aff.level != "category":
        return pl.DataFrame({"customer_id": ids, "affinity": [0.0] * len(ids)},
                            schema={"customer_id": pl.String, "affinity": pl.Float64})
    groups = [str(x) for x in aff.groups_]
    g = groups.index(category) if category in groups else -1
    rows = aff.customer_ids_.index(ids)
    known = rows >= 0
    value = np.zeros(len(ids))
    if g >= 0 and known.any():
        block = aff.weights_[rows[known]]
        total = np.asarray(block.sum(axis=1)).ravel()
        w = np.asarray(block[:, g].todense()).ravel()
        s = float(aff.shop_share_[g])
        prior = float(aff.prior)
        value[known] = (w + prior * s) / np.maximum(total + prior, 1e-12)
    return pl.DataFrame({"customer_id": pl.Series(ids, dtype=pl.String), "affinity": value})


def _complement_triggers(bundle: Bundle, category: str, hist: pl.DataFrame, age: pl.Expr) -> pl.DataFrame:
    """Strongest unfulfilled trigger per customer.

    Columns ``customer_id, complement, trigger_category, trigger_item_id, trigger_ts``.
    """
    schema: dict[str, pl.DataType] = {
        "customer_id": pl.String(), "complement": pl.Float64(), "trigger_category": pl.String(),
        "trigger_item_id": pl.String(), "trigger_ts": pl.Datetime("us")}
    cc = bundle.hybrid.category_complements
    if cc is None:
        return pl.DataFrame(schema=schema)
    graph = cc.graph_frame()
    edges = graph.filter(pl.col("target") == category).select("source", "lift")
    if edges.height == 0:
        return pl.DataFrame(schema=schema)
    half_life = max(float(cc.window_days) / 2.0, 1.0)
    last_target = hist.filter(pl.col("category") == category).group_by("customer_id").agg(
        pl.col("ts").max().alias("target_ts"))
    return (
        hist.join(edges, left_on="category", right_on="source")
        .join(last_target, on="customer_id", how="left")
        .filter(pl.col("target_ts").is_null() | (pl.col("target_ts") < pl.col("ts")))
        .with_columns((pl.col("lift") * 0.5 ** (age / half_life)).alias("complement"))
        .sort(["customer_id", "complement", "item_id"], descending=[False, True, False])
        .unique("customer_id", keep="first", maintain_order=True)
        .select("customer_id", "complement", pl.col("category").alias("trigger_category"),
                pl.col("item_id").alias("trigger_item_id"), pl.col("ts").alias("trigger_ts"))
    )


def _empty_propensity() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "customer_id": pl.String, "rank": pl.Int32, "score": pl.Float64, "affinity": pl.Float64,
        "complement": pl.Float64, "trigger_category": pl.String, "trigger_item_id": pl.String,
        "trigger_ts": pl.Datetime("us"), "days_since_last_purchase": pl.Float64,
        "bought_category_before": pl.Boolean,
    })

"""The KPI loop: what campaigns (and widgets) achieved, per model version, from the store alone.

Why from the store: the send log says who was emailed (and who was deliberately not — the control
group), and the events table says what happened afterwards (impressions, clicks, purchases carrying
``source`` = the campaign or widget id).  Comparing treated customers with their control group is the
only honest measure of a campaign: attributed revenue alone also counts purchases that would have
happened without the email.

Definitions, per ``(campaign, model_version)`` — one *exposure* is one customer in one run:

* ``recipients`` / ``controls`` — treated / control exposures in the send log;
* ``impressions``, ``clicks`` — events with that ``source`` after the customer's send;
  ``ctr = clicks / impressions``; ``not_interested`` — dismissals (``recsys.feedback``) with that source;
* attributed purchases — purchase events with that ``source`` within ``window_days`` after the send;
  ``conversion`` = exposures with one ÷ ``recipients``; ``revenue`` = Σ price × quantity;
  ``revenue_per_recipient``; ``aov`` = revenue ÷ orders (distinct ``order_id``, or customer + time);
* uplift — share of treated exposures followed by *any* purchase (any source) within ``window_days``
  minus the same share for control exposures (``uplift``, absolute) and their ratio − 1
  (``uplift_relative``).

Widgets (sources never seen in the send log) get impressions, clicks, CTR and attributed purchases,
with no recipients and no uplift.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from recsys.store import Store

__all__ = ["campaign_kpis", "KPI_COLUMNS"]

KPI_COLUMNS: tuple[str, ...] = (
    "kind", "source", "model_version", "runs", "recipients", "controls", "impressions", "clicks", "ctr",
    "not_interested", "converted", "conversion", "orders", "revenue", "revenue_per_recipient", "aov",
    "treated_purchase_rate", "control_purchase_rate", "uplift", "uplift_relative",
)


def _div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num.cast(pl.Float64) / den.cast(pl.Float64)).otherwise(None)


def campaign_kpis(
    store: Store,
    *,
    since: datetime | None = None,
    window_days: float = 14.0,
) -> pl.DataFrame:
    """KPIs per campaign and model version (plus per widget source), see the module docstring.

    Parameters
    ----------
    store
        The store holding the send log and the events.
    since
        Only sends (``sent_at``) and events (``ts``) at or after this time.
    window_days
        Purchases count for conversion and uplift when within this many days after the send.
    """
    window = timedelta(days=window_days)
    sends = store.sends(since=since)
    events = store.events(since=since).with_columns(
        (pl.col("price").fill_null(0.0) * pl.col("quantity").cast(pl.Float64)).alias("revenue"),
        pl.coalesce(
            pl.col("order_id"),
            pl.concat_str([pl.col("customer_id"), pl.col("ts").cast(pl.String)], separator="@"),
        ).alias("order"),
    )
    exposures = (
        sends.group_by("campaign", "model_version", "run_id", "customer_id", "control")
        .agg(pl.col("sent_at").min())
        .with_columns(pl.concat_str([pl.col("run_id"), pl.col("customer_id")], separator="\x1f")
                      .alias("exposure"))
        .sort("sent_at")
    )
    treated = exposures.filter(~pl.col("control"))
    key = ["campaign", "model_version"]

    # -- campaign-attributed events: the latest treated send of that campaign before the event
    by_source = (events.filter(pl.col("source").is_not_null()).drop("model_version")
                 .rename({"source": "campaign"}).sort("ts"))
    right = treated.select("campaign", "customer_id", "model_version", "exposure", "sent_at")
    # both sides are sorted by time overall, hence within every (campaign, customer) group
    attributed = by_source.join_asof(right, left_on="ts", right_on="sent_at", by=["campaign", "customer_id"],
                                     strategy="backward", check_sortedness=False)
    attributed = attributed.filter(pl.col("exposure").is_not_null())
    views = attributed.filter(pl.col("event").is_in(["impression", "click", "not_interested"])).group_by(key).agg(
        (pl.col("event") == "impression").sum().alias("impressions"),
        (pl.col("event") == "click").sum().alias("clicks"),
        (pl.col("event") == "not_interested").sum().alias("not_interested"),
    )
    bought = attributed.filter((pl.col("event") == "purchase") & (pl.col("ts") <= pl.col("sent_at") + window))
    sales = bought.group_by(key).agg(
        pl.col("exposure").n_unique().alias("converted"),
        pl.col("order").n_unique().alias("orders"),
        pl.col("revenue").sum(),
    )

    # -- uplift: any purchase within the window after the send, treated vs control exposures
    purchases = events.filter(pl.col("event") == "purchase").select("customer_id", "ts")
    followed = (
        exposures.join(purchases, on="customer_id")
        .filter((pl.col("ts") > pl.col("sent_at")) & (pl.col("ts") <= pl.col("sent_at") + window))
        .select("exposure", pl.lit(True).alias("bought")).unique()
    )
    groups = (
        exposures.join(followed, on="exposure", how="left")
        .with_columns(pl.col("bought").fill_null(False))
        .group_by(key).agg(
            pl.col("run_id").n_unique().alias("runs"),
            (~pl.col("control")).sum().alias("recipients"),
            pl.col("control").sum().alias("controls"),
            (pl.col("bought") & ~pl.col("control")).sum().alias("_tb"),
            (pl.col("bought") & pl.col("control")).sum().alias("_cb"),
        )
    )
    campaigns = (
        groups.join(views, on=key, how="left").join(sales, on=key, how="left")
        .with_columns(pl.col("impressions", "clicks", "not_interested", "converted", "orders").fill_null(0),
                      pl.col("revenue").fill_null(0.0))
        .with_columns(
            pl.lit("campaign").alias("kind"),
            pl.col("campaign").alias("source"),
            _div(pl.col("clicks"), pl.col("impressions")).alias("ctr"),
            _div(pl.col("converted"), pl.col("recipients")).alias("conversion"),
            _div(pl.col("revenue"), pl.col("recipients")).alias("revenue_per_recipient"),
            _div(pl.col("revenue"), pl.col("orders")).alias("aov"),
            _div(pl.col("_tb"), pl.col("recipients")).alias("treated_purchase_rate"),
            _div(pl.col("_cb"), pl.col("controls")).alias("control_purchase_rate"),
        )
        .with_columns(
            (pl.col("treated_purchase_rate") - pl.col("control_purchase_rate")).alias("uplift"),
            (_div(pl.col("treated_purchase_rate"), pl.col("control_purchase_rate")) - 1.0)
            .alias("uplift_relative"),
        )
    )

    # -- widgets: sources that never appear in the send log
    known = sends["campaign"].unique().implode()
    widget_events = events.filter(pl.col("source").is_not_null() & ~pl.col("source").is_in(known))
    widgets = (
        widget_events.group_by("source", "model_version").agg(
            (pl.col("event") == "impression").sum().alias("impressions"),
            (pl.col("event") == "click").sum().alias("clicks"),
            (pl.col("event") == "not_interested").sum().alias("not_interested"),
            pl.col("customer_id").filter(pl.col("event") == "purchase").n_unique().alias("converted"),
            pl.col("order").filter(pl.col("event") == "purchase").n_unique().alias("orders"),
            pl.col("revenue").filter(pl.col("event") == "purchase").sum().alias("revenue"),
        )
        .with_columns(
            pl.lit("widget").alias("kind"),
            _div(pl.col("clicks"), pl.col("impressions")).alias("ctr"),
            _div(pl.col("revenue"), pl.col("orders")).alias("aov"),
        )
    )
    out = pl.concat([campaigns, widgets], how="diagonal_relaxed") if widgets.height else campaigns
    for col in KPI_COLUMNS:
        if col not in out.columns:
            out = out.with_columns(pl.lit(None).alias(col))
    return out.select(
        *(pl.col(c).cast(pl.String) for c in ("kind", "source", "model_version")),
        *(pl.col(c).cast(pl.Int64) for c in ("runs", "recipients", "controls", "impressions", "clicks")),
        pl.col("ctr").cast(pl.Float64), pl.col("not_interested").cast(pl.Int64),
        pl.col("converted").cast(pl.Int64), pl.col("conversion").cast(pl.Float64),
        pl.col("orders").cast(pl.Int64),
        *(pl.col(c).cast(pl.Float64) for c in ("revenue", "revenue_per_recipient", "aov",
                                                "treated_purchase_rate", "control_purchase_rate", "uplift",
                                                "uplift_relative")),
    ).sort(["kind", "source", "model_version"], nulls_last=True)

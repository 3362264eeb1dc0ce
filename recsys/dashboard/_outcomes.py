"""The marketing-side panels of the dashboard: campaigns (audience, exclusions, a preview of picks), KPI
trends per campaign / arm / model version, and experiment read-outs with their intervals.

Why the campaign panel plans real runs: "how many would this reach, how many are left out for consent,
what would they get and why" is exactly ``recsys.campaigns.plan_campaign`` without writing anything (the
store is only read), so the counts on the page are the counts the next run will print.  Read-outs come
from ``recsys.experiments.read_experiment``, the code behind ``recsys kpis --experiment`` and the
promotion gate, so the page, the CLI and the gate cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import polars as pl

from recsys.bundle import Bundle
from recsys.campaigns import EXCLUSION_REASONS, Campaign, default_now, plan_campaign
from recsys.dashboard._panels import json_rows
from recsys.dataset import Dataset
from recsys.exceptions import RecsysError
from recsys.experiments import METRIC_TESTS, ExperimentLog, read_experiment
from recsys.rules import PlacementRules
from recsys.store import Store

__all__ = ["campaigns_panel", "kpi_trends", "experiments_panel"]


def _preview(run: Any, names: Mapping[str, str], n: int) -> list[dict[str, Any]]:
    """The first ``n`` recipients (by id) and their picks with the reason a customer would read."""
    picks = run.picks
    if picks.height == 0:
        return []
    who = sorted(picks["customer_id"].unique().to_list())[:n]
    rows = picks.filter(pl.col("customer_id").is_in(pl.Series(who, dtype=pl.String).implode())).sort(
        "customer_id", "rank")
    out: dict[str, list[dict[str, Any]]] = {c: [] for c in who}
    for r in rows.iter_rows(named=True):
        out[r["customer_id"]].append({"rank": r["rank"], "item_id": r["item_id"],
                                      "name": names.get(r["item_id"]) or r["item_id"], "reason": r["reason"],
                                      "reason_text": r["reason_text"], "source_item_id": r["source_item_id"]})
    return [{"customer_id": c, "picks": p} for c, p in out.items()]


def campaigns_panel(
    campaigns: Sequence[Campaign],
    bundle: Bundle,
    data: Dataset,
    *,
    placements: Mapping[str, PlacementRules],
    store: Store | None,
    model_version: str | None = None,
    preview: int = 3,
) -> dict[str, Any]:
    """Each campaign planned now (nothing written): audience, recipients, holdout, every exclusion
    reason (consent first) and a preview of picks with reasons.

    A campaign that cannot be planned (a category the catalogue lacks, a strategy this bundle cannot
    serve) gets an ``error`` naming why instead of numbers; the others are unaffected.
    """
    names = dict(bundle.catalogue.select("item_id", pl.col("name").fill_null(pl.col("item_id"))).iter_rows())
    now = default_now(data)
    out: list[dict[str, Any]] = []
    for c in campaigns:
        row: dict[str, Any] = {"name": c.name, "description": c.description, "strategy": c.strategy.kind,
                               "placement": c.placement, "holdout_share": c.holdout_share,
                               "experiment": c.experiment.name if c.experiment is not None else None}
        try:
            run = plan_campaign(c, bundle, data, placements=placements, store=store, now=now,
                                model_version=model_version, run_id=f"{c.name}-dashboard-preview")
        except RecsysError as exc:
            out.append({**row, "error": str(exc)})
            continue
        s = run.summary
        excluded = {r: int(s["excluded"].get(r, 0)) for r in EXCLUSION_REASONS}
        arms = None
        if c.experiment is not None:
            a = getattr(run, "assignments", None)
            if a is not None and a.height:
                arms = json_rows(a.group_by("arm").agg(pl.len().alias("customers"),
                                                       pl.col("emailed").sum().alias("emailed")).sort("arm"))
        out.append({**row, "audience": int(s["audience"]), "recipients": int(s["recipients"]),
                    "controls": int(s["controls"]), "excluded": excluded, "arms": arms,
                    "reason_mix": s.get("reason_mix", {}), "preview": _preview(run, names, preview)})
    return {"now": now.isoformat(), "campaigns": out}


def _campaign_arms(store: Store) -> pl.DataFrame:
    """``campaign, run_id, customer_id, arm`` of every campaign experiment's assignments."""
    log = ExperimentLog(store)
    frames = []
    for name in log.names():
        info = log.experiment(name)
        if info is not None and info["kind"] == "campaign":
            frames.append(log.assignments(name).select("campaign", "run_id", "customer_id", "arm"))
    schema = {"campaign": pl.String, "run_id": pl.String, "customer_id": pl.String, "arm": pl.String}
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def kpi_trends(store: Store, *, window_days: float = 14.0) -> dict[str, Any]:
    """Per day, per campaign, arm and model version: customers, conversion and revenue per customer.

    Campaigns: every customer of a send (emailed or holdout) is a unit; ``conversion`` is the share with
    *any* purchase within ``window_days`` after the send and ``revenue_per_customer`` its revenue (the
    uplift definition of ``recsys.campaigns.campaign_kpis``, so holdout and arms are comparable); the arm
    is the campaign experiment's arm, else ``emailed`` / ``holdout``.  Service experiments: per day the
    customers (or sessions) first shown a list that day, and those of them with an attributed purchase.

    Returns
    -------
    dict
        ``window_days`` and ``series``: ``{kind, campaign, arm, model_version, points: [{day, customers,
        converted, conversion, revenue, revenue_per_customer}]}``, sorted by campaign, arm and version.
    """
    sends = store.sends()
    series: list[dict[str, Any]] = []
    key = ["campaign", "arm", "model_version"]
    if sends.height:
        exposures = sends.group_by("campaign", "model_version", "run_id", "customer_id", "control").agg(
            pl.col("sent_at").min())
        exposures = exposures.join(_campaign_arms(store), on=["campaign", "run_id", "customer_id"], how="left")
        exposures = exposures.with_columns(
            pl.coalesce("arm", pl.when(pl.col("control")).then(pl.lit("holdout")).otherwise(pl.lit("emailed")))
            .alias("arm"), pl.int_range(pl.len()).alias("_x"))
        bought = store.events_of(["purchase"]).select(
            "customer_id", "ts", (pl.col("price").fill_null(0.0) * pl.col("quantity").cast(pl.Float64)).alias("r"))
        window = timedelta(days=window_days)
        hits = (exposures.select("_x", "customer_id", "sent_at").join(bought, on="customer_id")
                .filter((pl.col("ts") > pl.col("sent_at")) & (pl.col("ts") <= pl.col("sent_at") + window))
                .group_by("_x").agg(pl.col("r").sum().alias("revenue")))
        per = exposures.join(hits, on="_x", how="left").with_columns(
            pl.col("revenue").is_not_null().alias("converted"), pl.col("revenue").fill_null(0.0),
            pl.col("sent_at").dt.date().cast(pl.String).alias("day"))
        series += _series(per, key, "campaign", "customer_id")
    log = ExperimentLog(store)
    for name in log.names():
        info = log.experiment(name)
        if info is None or info["kind"] != "service":
            continue
        # a customer counts on the day they were first shown a list; their attributed purchases count there too
        shown = log.exposures(name).group_by("arm", "subject").agg(
            pl.col("model_version").drop_nulls().first(),
            pl.col("shown_at").min().dt.date().cast(pl.String).alias("day"))
        outs = log.outcomes(name).filter(pl.col("event") == "purchase").group_by("arm", "subject").agg(
            (pl.col("price").fill_null(0.0) * pl.col("quantity")).sum().alias("revenue"))
        per = shown.join(outs, on=["arm", "subject"], how="left").with_columns(
            pl.col("revenue").is_not_null().alias("converted"), pl.col("revenue").fill_null(0.0),
            pl.lit(name).alias("campaign"))
        series += _series(per, key, "service", "subject")
    return {"window_days": window_days, "series": series}


def _series(per: pl.DataFrame, key: list[str], kind: str, unit: str) -> list[dict[str, Any]]:
    daily = per.group_by(*key, "day").agg(
        pl.col(unit).n_unique().cast(pl.Int64).alias("customers"),
        pl.col(unit).filter(pl.col("converted")).n_unique().cast(pl.Int64).alias("converted"),
        pl.col("revenue").sum()).with_columns(
        (pl.col("converted") / pl.col("customers")).alias("conversion"),
        (pl.col("revenue") / pl.col("customers")).alias("revenue_per_customer")).sort(*key, "day", nulls_last=True)
    out: list[dict[str, Any]] = []
    for (campaign, arm, version), part in daily.group_by(key, maintain_order=True):
        out.append({"kind": kind, "campaign": campaign, "arm": arm, "model_version": version,
                    "points": json_rows(part.select("day", "customers", "converted", "conversion", "revenue",
                                                    "revenue_per_customer"))})
    return out


def experiments_panel(store: Store) -> dict[str, Any]:
    """Every experiment in the store, read out as ``recsys kpis --experiment`` does: per arm and metric the
    value with its 95 % interval, the difference to the control with its interval and p-value, the
    verdict, and the promotion decision per treatment arm."""
    log = ExperimentLog(store)
    out: list[dict[str, Any]] = []
    for name in log.names():
        try:
            result = read_experiment(store, name)
        except RecsysError as exc:
            out.append({"name": name, "error": str(exc)})
            continue
        r = result.readout
        cfg = result.config
        decisions = [{"arm": d.arm, "wins": d.wins, "reason": d.reason} for d in map(r.decide, r.treatments)]
        out.append({"name": name, "kind": result.kind, "control": r.control, "arms": r.arms,
                    "primary_metric": r.primary_metric, "alpha": r.alpha, "impressions_are": result.impressions_are,
                    "started_at": str(result.started_at) if result.started_at is not None else None,
                    "models": {k: cfg.get(k) for k in ("control_model", "challenger_model", "campaign") if k in cfg},
                    "rows": json_rows(r.table), "notes": list(r.notes), "decisions": decisions})
    return {"tests": dict(METRIC_TESTS), "experiments": out}

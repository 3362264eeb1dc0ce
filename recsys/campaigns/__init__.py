"""Consent-aware email-pick campaigns: audience → consent and pressure → picks → holdout → send log → KPIs.

Why a package of its own: a campaign is more than a batch of recommendations.  It has an audience
defined by marketers ("bought trousers in the last 30 days"), a theme (complements, replenishment,
upsell, …), legal constraints (email consent, suppression, erasure), contact pressure limits
(frequency cap across campaigns, never the same item twice in a month), a control group for honest
measurement, and an audit trail (the send log) that makes every run idempotent.

    >>> campaign = load_campaign("configs/campaigns/trousers_to_belts_shoes.yaml")  # doctest: +SKIP
    >>> run = run_campaign(campaign, bundle, data, placements=load_placements("configs/placements.yaml"),
    ...                    store=Store("sqlite:///data/state.db"), out="picks.parquet")  # doctest: +SKIP
    >>> run.summary["excluded"]  # doctest: +SKIP
    {'consent': 412, 'suppression': 3, 'erased': 0, 'frequency_cap': 17, 'no_picks': 25, 'holdout': 60}
    >>> campaign_kpis(store)  # doctest: +SKIP
"""

from __future__ import annotations

from recsys.campaigns._audience import build_audience, category_propensity, read_customer_ids, segment_frame
from recsys.campaigns._config import Campaign, Strategy, campaign_from_dict, load_campaign
from recsys.campaigns._index import CampaignIndex
from recsys.campaigns._hash import holdout_mask, parse_shard, shard_mask, stable_hash
from recsys.campaigns._kpis import KPI_COLUMNS, campaign_kpis
from recsys.campaigns._picks import STRATEGIES, PickContext
from recsys.campaigns._run import (
    EXCLUSION_REASONS,
    PICK_COLUMNS,
    CampaignRun,
    check_campaign,
    default_now,
    plan_campaign,
    resolve_consent,
    run_campaign,
    summary_lines,
    summary_path,
)

__all__ = [
    "Campaign",
    "CampaignIndex",
    "CampaignRun",
    "EXCLUSION_REASONS",
    "KPI_COLUMNS",
    "PICK_COLUMNS",
    "PickContext",
    "STRATEGIES",
    "Strategy",
    "build_audience",
    "campaign_from_dict",
    "check_campaign",
    "campaign_kpis",
    "category_propensity",
    "default_now",
    "holdout_mask",
    "load_campaign",
    "parse_shard",
    "plan_campaign",
    "read_customer_ids",
    "segment_frame",
    "resolve_consent",
    "run_campaign",
    "shard_mask",
    "stable_hash",
    "summary_lines",
    "summary_path",
]

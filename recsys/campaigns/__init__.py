"""Consent-aware email-pick campaigns: audience → consent and pressure → picks → holdout → send log → KPIs.

Why a package of its own: a campaign is more than a batch of recommendations.  It has an audience
defined by marketers ("bought trousers in the last 30 days"), a theme (complements, replenishment,
upsell, …), legal constraints (email consent, suppression, erasure), contact pressure limits
(frequency cap across campaigns, never the same item twice in a month), a control group for honest
measurement, and an audit trail (the send log) that makes every run idempotent.

    >>> campaign = load_campaign("configs/campaigns/trousers_to_belts_shoes.yaml")  # doctest: +SKIP
    >>> run = run_campaign(campaign, bundle, data, placements=load_placements("configs/placements.yaml"),
    ...                    store=Store("sqlite:///data/state.db"), out="picks.parquet")  # doctest: +SKIP
    >>> for run in run_campaigns([welcome, winback], bundle, data, placements=rules, store=store,
    ...                          out="week49/{campaign}.parquet"):  # doctest: +SKIP
    ...     print(summary_lines(run.summary))
    >>> run.summary["excluded"]  # doctest: +SKIP
    {'consent': 412, 'suppression': 3, 'erased': 0, 'frequency_cap': 17, 'no_picks': 25, 'holdout': 60}
    >>> campaign_kpis(store)  # doctest: +SKIP
"""

from __future__ import annotations

from recsys.campaigns._audience import build_audience, category_propensity
from recsys.campaigns._config import Campaign, campaign_from_dict, load_campaign
from recsys.campaigns._hash import holdout_mask, parse_shard, shard_mask
from recsys.campaigns._index import CampaignIndex
from recsys.campaigns._item_audience import item_propensity
from recsys.campaigns._kpis import campaign_kpis
from recsys.campaigns._pressure import EXCLUSION_REASONS
from recsys.campaigns._run import PICK_COLUMNS, CampaignRun, default_now, plan_campaign, run_campaign
from recsys.campaigns._series import run_campaigns
from recsys.campaigns._summary import summary_lines, summary_path

# The public surface: what the CLI, the service, benches and tests use.  Everything else (strategies,
# the pick context, consent and pressure, summaries' internals) lives in the private modules:
#   _config (campaign files) · _audience · _index (shared codes and tables) · _context and
#   _strategies (candidates) · _batches (pool and rules, batch by batch) · _pressure (consent, caps) ·
#   _run (one campaign) · _series (several) · _summary · _kpis · _hash (shards, holdout) · _util
__all__ = [
    "Campaign",
    "CampaignIndex",
    "CampaignRun",
    "EXCLUSION_REASONS",
    "PICK_COLUMNS",
    "build_audience",
    "campaign_from_dict",
    "campaign_kpis",
    "category_propensity",
    "default_now",
    "holdout_mask",
    "item_propensity",
    "load_campaign",
    "parse_shard",
    "plan_campaign",
    "run_campaign",
    "run_campaigns",
    "shard_mask",
    "summary_lines",
    "summary_path",
]

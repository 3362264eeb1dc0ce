"""A campaign run's picks on Ray: the eligible customers in blocks → ``recsys.campaigns`` ``pick`` in
workers that loaded the bundle and the data set once per run; everything else stays on the driver.

What runs where, and why the result equals the local run:

* driver, before: the audience, consent, suppression, erasures, the frequency cap and the re-send
  window (``exclusions``: they read the store and need every customer's sends), so workers get only
  eligible customers and the recent sends as a frame;
* workers: ``pick`` — the library's own per-batch function — on blocks of consecutive eligible
  customers (picks are per customer, so any cut gives the same rows, and block order is kept);
* driver, after: "no picks", the holdout draw, the export, the summary and the send log in one
  transaction (``CampaignRun.log``), exactly as locally.

Bundle state: ``replenishment`` and ``winback`` fold the data's purchases newer than the bundle into
it.  Locally the bundle is shared by the campaigns of one call, so a later campaign sees the fold of
an earlier one; here the picker remembers the latest ``now`` folded and each worker replays that fold
on its fresh copy before picking, and the driver folds its own copy too (for the summary's count and
the next campaign's audience).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from recsys.campaigns._batches import _PICK_SCHEMA, pick
from recsys.campaigns._config import Campaign
from recsys.campaigns._context import PickContext
from recsys.dataset import Dataset
from recsys.engines._ray import BlockWorker, BundleSource, ClusterInfo, EngineError, get_frames, put_frames, \
    run_blocks
from recsys.engines.picks import block_slices
from recsys.rules import PlacementRules, RuleSet

__all__ = ["CampaignWorker", "RayPicker"]

#: Strategies whose candidates fold newer purchases into the bundle (``PickContext.refresh``).
FOLDING_STRATEGIES = ("replenishment", "winback")
_REMOVED = "_resend_removed"


class CampaignWorker(BlockWorker):
    """One per worker process and run: bundle, data set, index and pick context built once."""

    def __init__(self, *, source: BundleSource, data: Any, data_meta: dict[str, Any], campaign: Campaign,
                 rules: PlacementRules, now: datetime, folded_to: datetime | None, recent: Any,
                 batch_size: int) -> None:
        from recsys.bundle import Bundle
        from recsys.campaigns._index import CampaignIndex

        with source.local() as folder:
            bundle = Bundle.load(folder)
        frames = get_frames(data)
        dataset = Dataset(frames["interactions"], frames["items"], frames["customers"], **data_meta)
        index = CampaignIndex(bundle, dataset)
        if folded_to is not None:  # what earlier campaigns of the call folded into the driver's bundle
            index.refresh(folded_to)
        self.ctx = PickContext(bundle, dataset, now=now, rules=rules, exclude=campaign.exclude, index=index)
        self.ruleset = index.ruleset(rules)
        self.campaign, self.batch_size = campaign, batch_size
        self.recent = get_frames(recent)["recent"] if recent is not None else None

    def block(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The picks of one block of customers, plus one accounting row (null ``customer_id``) counting the
        candidates the re-send window removed, so the driver can total them."""
        picked, removed = pick(self.ctx, self.ruleset, self.campaign, frame["customer_id"].to_list(),
                               self.recent, self.batch_size, False, 1)
        # one accounting row per block (customer_id null): how many candidates the re-send window removed
        return pl.concat([picked.with_columns(pl.lit(None, pl.Int64).alias(_REMOVED)),
                          pl.DataFrame({_REMOVED: [removed]}, schema={_REMOVED: pl.Int64})],
                         how="diagonal_relaxed")


class RayPicker:
    """Stands in for ``pick`` in ``plan_campaign`` (its ``picker`` argument); one per call, so the
    campaigns of a series share what it ships (the data set, the bundle's source)."""

    def __init__(self, cluster: ClusterInfo, source: BundleSource, data: Dataset) -> None:
        self.cluster, self.source = cluster, source
        self.data = put_frames({"interactions": data.interactions, "items": data.items,
                                "customers": data.customers})
        self.data_meta = {"source": data.source, "consent_default": data.consent_default}
        self.folded_to: datetime | None = None
        self.blocks = 0

    def __call__(self, ctx: PickContext, ruleset: RuleSet, campaign: Campaign, eligible: list[str],
                 recent_sent: pl.DataFrame | None, batch_size: int, progress: bool,
                 workers: int = 1) -> tuple[pl.DataFrame, int]:
        slices = block_slices(len(eligible), batch=batch_size, workers=self.cluster.workers)
        blocks = [pl.DataFrame({"customer_id": eligible[s]}, schema={"customer_id": pl.String}) for s in slices]
        recent = put_frames({"recent": recent_sent}) if recent_sent is not None else None
        parts: list[pl.DataFrame] = []
        removed, seen = 0, set()
        for k, out in run_blocks(blocks, CampaignWorker, workers=self.cluster.workers, ctor_kwargs={
                "source": self.source, "data": self.data, "data_meta": self.data_meta, "campaign": campaign,
                "rules": ruleset.rules, "now": ctx.now, "folded_to": self.folded_to, "recent": recent,
                "batch_size": batch_size}):
            account = out.filter(pl.col("customer_id").is_null())
            if account.height:
                seen.add(k)
                removed += int(account[_REMOVED].sum())
            parts.append(out.filter(pl.col("customer_id").is_not_null()).drop(_REMOVED))
        if len(seen) != len(blocks):
            missing = sorted(set(range(len(blocks))) - seen)
            raise EngineError(f"campaign {campaign.name}: blocks {missing[:5]} never came back")
        self.blocks += len(blocks)
        if eligible and campaign.strategy.kind in FOLDING_STRATEGIES:
            if campaign.strategy.kind != "replenishment" or ctx.hybrid.buy_again is not None:
                ctx.refresh()  # the driver's copy, as the local run's strategies do
                self.folded_to = ctx.now if self.folded_to is None else max(self.folded_to, ctx.now)
        picks = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame(schema=_PICK_SCHEMA)
        return picks.cast(_PICK_SCHEMA), removed  # type: ignore[arg-type]

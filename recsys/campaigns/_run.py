"""One campaign run: audience → consent and pressure → picks → holdout → export and send log.

What a run guarantees (and the tests check):

* **Consent.** Only customers whose email consent resolves to granted: the store's consent table
  overrides the data set's ``customers.email_consent``; a customer in neither gets the data set's
  ``consent_default`` (denied unless its config says otherwise).
* **Pressure.** No suppressed or erased customer (store); nobody who already got
  ``frequency_cap.max_emails`` emails from any campaign in the last ``per_days`` days; no item sent to
  the same customer in the last ``resend_window_days`` days.  The windows are measured on the send
  log's own clock (wall-clock UTC, the time ``Store.log_sends`` records), not on ``now``, which is the
  data's reference time for recommendations.
* **Idempotence.** A run is identified by its run id (default ``<campaign>-<date>``).  Sends already
  logged under the same run id neither count against the frequency cap nor the re-send window of that
  run, and the send log ignores rows it already holds — re-running the same run id (a retry) gives the
  same picks, unless other emails went out in between, and never logs anything twice.  A different
  run id is a different email: the cap applies.
* **Shards.** ``shard=(i, n)`` keeps customers with ``stable_hash(customer_id) mod n == i - 1``; the n
  shards of one run partition its audience exactly.
* **Holdout.** Among customers who would get an email, a share ``holdout_share`` chosen by a stable
  hash of (campaign, run id, customer) is the control group: no email (not in the export) but logged
  with ``control = true`` and the picks they would have got, so ``recsys kpis`` can measure uplift.
  Control customers are drawn *after* the other exclusions, so treated and control differ only by the
  email.
* **Accounting.** Every customer of the audience (in this shard) is either a recipient or counted under
  exactly one exclusion reason, checked in this order: consent, suppression, erased, frequency cap,
  no picks, holdout.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys._io import atomic_write, atomic_write_text
from recsys.bundle import Bundle
from recsys.campaigns._abandoned import carts_for
from recsys.campaigns._audience import build_audience
from recsys.campaigns._batches import pick
from recsys.campaigns._budget import budget_recipients, expected_value
from recsys.campaigns._config import Campaign
from recsys.campaigns._context import PickContext
from recsys.campaigns._hash import holdout_mask, parse_shard, shard_mask
from recsys.campaigns._index import CampaignIndex, shared_index
from recsys.campaigns._pressure import exclusions
from recsys.campaigns._summary import build_summary, summary_path
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError
from recsys.feedback import with_dismissed
from recsys.rules import Block, PlacementRules, as_naive_utc
from recsys.store import Store

__all__ = [
    "CampaignRun",
    "PICK_COLUMNS",
    "check_campaign",
    "default_now",
    "default_run_id",
    "plan_campaign",
    "run_campaign",
]

log = logging.getLogger(__name__)

#: ``pick``'s signature: what ``plan_campaign`` calls to pick for the eligible customers.
Picker = Callable[..., tuple[pl.DataFrame, int]]

#: Columns of the exported picks file, in order.
PICK_COLUMNS: tuple[str, ...] = (
    "customer_id", "campaign", "rank", "item_id", "score", "reason", "source_item_id", "reason_text",
    "source_date", "due_date",
)


def _clock() -> datetime:
    """Wall-clock UTC, naive: the clock ``Store.log_sends`` stamps ``sent_at`` with."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def default_now(data: Dataset) -> datetime:
    """Midnight after the data's last purchase: "the morning after the data ends"."""
    last = data.purchases["ts"].max()
    if last is None:
        return _clock()
    day = last.date() if isinstance(last, datetime) else date.today()
    return datetime(day.year, day.month, day.day) + timedelta(days=1)


def default_run_id(campaign: Campaign, day: date) -> str:
    """``<campaign name>-<YYYY-MM-DD>``: one email per campaign per day unless told otherwise."""
    return f"{campaign.name}-{day:%Y-%m-%d}"


@dataclass
class CampaignRun:
    """The outcome of ``plan_campaign``: exported picks, control group, exclusions and a summary.

    ``picks`` follow ``PICK_COLUMNS`` (recipients only); ``controls`` has the same columns for the
    holdout customers (never exported, logged with ``control = true``); ``excluded`` lists
    ``customer_id, reason`` for every audience member left out.
    """

    campaign: Campaign
    run_id: str
    model_version: str | None
    now: datetime
    picks: pl.DataFrame
    controls: pl.DataFrame
    excluded: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    #: The picks file ``run_campaign`` wrote (``None``: not written).
    out: Path | None = None

    def log(self, store: Store) -> int:
        """Record the picks (``control = false``) and the control group (``control = true``) in the send
        log; returns rows newly written (0 on a re-run of the same run id)."""
        rows = pl.concat([
            self.picks.select("customer_id", "item_id", "rank", pl.lit(False).alias("control")),
            self.controls.select("customer_id", "item_id", "rank", pl.lit(True).alias("control")),
        ])
        written = store.log_sends(rows, run_id=self.run_id, campaign=self.campaign.name,
                                  model_version=self.model_version)
        self.summary["logged_rows"] = written
        self.summary["already_logged_rows"] = rows.height - written
        return written

    def write_picks(self, out: str | Path) -> Path:
        """Write the picks atomically (``.parquet``, or ``.csv`` by suffix)."""
        out = Path(out)
        return atomic_write(out, self.picks.write_csv if out.suffix == ".csv" else self.picks.write_parquet)

    def write_summary(self, path: str | Path) -> Path:
        """Write the summary as JSON atomically."""
        return atomic_write_text(path, json.dumps(self.summary, indent=2, default=str))


def _campaign_rules(campaign: Campaign, placements: Mapping[str, PlacementRules]) -> PlacementRules:
    if campaign.placement not in placements:
        raise campaign.error("placement", f"unknown placement {campaign.placement!r}; "
                                          f"known: {', '.join(sorted(placements))}")
    rules = placements[campaign.placement]
    update: dict[str, Any] = {}
    if campaign.exclude.categories:
        excluded = set(campaign.exclude.categories)
        update["exclude_categories"] = sorted(set(rules.exclude_categories) | excluded)
        update["include_categories"] = [c for c in rules.include_categories if c not in excluded]
    if campaign.exclude.items:
        update["block"] = [*rules.block, Block(item_ids=list(campaign.exclude.items))]
    if not campaign.fill:
        update["fallback"] = []
    return rules.model_copy(update=update) if update else rules


def _check_categories(campaign: Campaign, known: set[str]) -> None:
    s = campaign.strategy
    fields = (("strategy.categories", s.categories), ("strategy.source_categories", s.source_categories),
              ("exclude.categories", campaign.exclude.categories))
    for name, values in fields:
        bad = [c for c in values if c not in known]
        if bad:
            shown = ", ".join(sorted(known)[:12]) + (f", … ({len(known)} in all)" if len(known) > 12 else "")
            raise campaign.error(name, f"unknown category {bad[0]!r}; known: {shown}")


def check_campaign(campaign: Campaign, data: Dataset, *,
                   placements: Mapping[str, PlacementRules]) -> PlacementRules:
    """The campaign's email rules, after checking what only the data can tell: its placement exists
    and every category it names is in the catalogue.

    Why separate: a scheduler (or ``recsys campaign run`` with several files) checks every campaign
    before running the first, so a typo in the third file does not leave two campaigns sent.

    Raises
    ------
    ConfigError
        Naming the campaign file and the field (``placement``, ``strategy.categories``, …).
    """
    rules = _campaign_rules(campaign, placements)
    _check_categories(campaign, set(data.items["category"].drop_nulls().unique().to_list()))
    return rules


def plan_campaign(
    campaign: Campaign,
    bundle: Bundle,
    data: Dataset,
    *,
    placements: Mapping[str, PlacementRules],
    store: Store | None = None,
    now: datetime | None = None,
    run_id: str | None = None,
    shard: tuple[int, int] | str | None = None,
    segments: pl.DataFrame | None = None,
    model_version: str | None = None,
    batch_size: int = 4000,
    progress: bool = False,
    clock: datetime | None = None,
    index: CampaignIndex | None = None,
    workers: int = 1,
    picker: Picker | None = None,
) -> CampaignRun:
    """Compute a campaign run without writing anything (the store is only read).

    Parameters
    ----------
    campaign
        A validated campaign (``load_campaign``).
    bundle
        The model bundle.  ``replenishment`` and ``winback`` fold the data's purchases newer than the
        bundle into it, in place (as the service does with live events).
    data
        The data set: customers (consent), purchases (audience, facts) and items (catalogue).
    placements
        Business rules per placement (``recsys.rules.load_placements``).
    store
        Consent overrides, suppression list, erasures and the send log; ``None`` means none of those
        exist (consent then comes from the data set alone).
    now
        Reference time for audiences and picks; default ``default_now(data)``.
    run_id
        Identity of this email; default ``<campaign>-<date>`` with the date of ``now`` when ``now`` is
        given, else today's (UTC).
    shard
        ``(i, n)`` or ``"i/n"``: only this shard of the audience.
    segments
        ``recsys.segments`` frame for segment/lifecycle/churn audiences (computed when needed if absent).
    model_version
        Recorded with every logged send (the bundle tag).
    batch_size
        Customers per vectorised batch.
    progress
        Show a progress bar over customers.
    clock
        "Now" on the send log's clock (default wall-clock UTC) for the cap and re-send windows.
    workers
        Threads picking batches at once (strategies in ``PARALLEL_STRATEGIES``; the others run in one):
        the audience is cut into at least that many batches.  The picks do not depend on it.
    index
        The ``CampaignIndex`` of ``(bundle, data)``, shared by several runs (campaigns, shards) in one
        process so its codes and tables are built once; built for this run when ``None``.  The picks
        are the same either way.
    picker
        Runs ``pick`` elsewhere with the same result (``recsys.engines.campaigns.RayPicker``: blocks of
        eligible customers on a Ray cluster); default ``pick`` in this process.
    """
    if campaign.experiment is not None:  # arms by strategy or model, plus the holdout: campaigns/_arms.py
        from recsys.campaigns._arms import plan_arms

        return plan_arms(campaign, bundle, data, placements=placements, store=store, now=now, run_id=run_id,
                         shard=shard, segments=segments, model_version=model_version, batch_size=batch_size,
                         progress=progress, clock=clock, index=index, workers=workers, picker=picker)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    shard_t = parse_shard(shard)
    clock = as_naive_utc(clock) if clock is not None else _clock()
    explicit_now = now is not None
    now = as_naive_utc(now) if now is not None else default_now(data)
    run_id = run_id or default_run_id(campaign, now.date() if explicit_now else clock.date())
    for name, value in (("batch_size", batch_size), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"The '{name}' parameter of plan_campaign must be an int in [1, inf). "
                              f"Got {value!r} instead.")
    rules = check_campaign(campaign, data, placements=placements)

    t0 = time.perf_counter()
    audience = build_audience(campaign, data, now=now, segments=segments)["customer_id"].to_list()
    carts = carts_for(campaign, data, store, now)  # abandoned_cart: only customers with one
    if carts is not None:
        audience = sorted(set(audience) & set(carts["customer_id"].to_list()))
    ids = [c for c, keep in zip(audience, shard_mask(audience, shard_t)) if keep]
    timings["audience"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    reason, recent_sent = exclusions(ids, data, store, campaign, run_id, clock)
    eligible = [c for c, r in zip(ids, reason) if r == ""]
    recent_sent, dismissed = with_dismissed(recent_sent, store, eligible, data, now, campaign.not_interested_days)
    timings["consent_and_pressure"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    index = shared_index(index, bundle, data)
    timings["index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ctx = PickContext(bundle, data, now=now, rules=rules, exclude=campaign.exclude, index=index)
    ctx.carts = carts
    ruleset = index.ruleset(rules)
    timings["prepare"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    picked, resend_removed = (picker or pick)(ctx, ruleset, campaign, eligible, recent_sent, batch_size,
                                              progress, workers)
    timings["picks"] = time.perf_counter() - t0

    ev = None
    if campaign.budget is not None:
        t0 = time.perf_counter()
        ev = expected_value(data, now=now)
        timings["expected_value"] = time.perf_counter() - t0
    picks, controls, excluded = _split(ids, reason, picked, campaign, run_id, ev)
    seconds = time.perf_counter() - t_start
    summary = build_summary(campaign, run_id=run_id, model_version=model_version, now=now, clock=clock,
                            shard=shard_t, audience_total=len(audience), audience=len(ids), reason=reason,
                            picks=picks, controls=controls, ctx=ctx, resend_removed=resend_removed,
                            timings=timings, seconds=seconds)
    summary["workers"] = workers
    summary["not_interested_pairs"] = dismissed
    log.info("campaign %s run %s: audience %d, recipients %d, left out %s (%.2fs)", campaign.name, run_id,
             len(ids), summary["recipients"], summary["excluded"], seconds)
    return CampaignRun(campaign, run_id, model_version, now, picks, controls, excluded, summary)


def _split(ids: list[str], reason: np.ndarray, picked: pl.DataFrame, campaign: Campaign,
           run_id: str, ev: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Mark "no picks", draw the control group among the rest; ``(picks, controls, excluded)``.

    With ``campaign.budget`` (and ``ev``, ``expected_value``) only the best customers by expected value
    are kept until ``budget`` recipients (controls drawn among them), the others "over budget".
    ``reason`` is updated in place.
    """
    counts = dict(picked.group_by("customer_id").len().iter_rows())
    has_picks = np.fromiter((counts.get(c, 0) >= campaign.min_picks for c in ids), dtype=bool, count=len(ids))
    reason[(reason == "") & ~has_picks] = "no_picks"
    left = [c for c, r in zip(ids, reason) if r == ""]
    control = holdout_mask(left, campaign.holdout_share, campaign=campaign.name, run_id=run_id)
    control_ids = {c for c, k in zip(left, control) if k}
    if campaign.budget is not None and ev is not None:
        kept, control_ids = budget_recipients(left, control_ids, ev, campaign.budget)
        reason[np.fromiter((c not in kept and c not in control_ids and r == "" for c, r in zip(ids, reason)),
                           dtype=bool, count=len(ids))] = "over_budget"
    reason[np.fromiter((c in control_ids for c in ids), dtype=bool, count=len(ids))] = "holdout"
    recipients = pl.Series([c for c, r in zip(ids, reason) if r == ""], dtype=pl.String).implode()
    in_control = pl.Series(sorted(control_ids), dtype=pl.String).implode()
    picks = picked.filter(pl.col("customer_id").is_in(recipients)).select(list(PICK_COLUMNS))
    controls = picked.filter(pl.col("customer_id").is_in(in_control)).select(list(PICK_COLUMNS))
    excluded = pl.DataFrame({"customer_id": [c for c, r in zip(ids, reason) if r],
                             "reason": [r for r in reason if r]},
                            schema={"customer_id": pl.String, "reason": pl.String})
    return picks, controls, excluded


def run_campaign(
    campaign: Campaign,
    bundle: Bundle,
    data: Dataset,
    *,
    placements: Mapping[str, PlacementRules],
    store: Store | None = None,
    out: str | Path | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    run_id: str | None = None,
    shard: tuple[int, int] | str | None = None,
    segments: pl.DataFrame | None = None,
    model_version: str | None = None,
    batch_size: int = 4000,
    progress: bool = False,
    clock: datetime | None = None,
    index: CampaignIndex | None = None,
    workers: int = 1,
    picker: Picker | None = None,
) -> CampaignRun:
    """``plan_campaign``, then write ``out`` (+ summary JSON beside it) and log the sends unless ``dry_run``.

    The picks file is written before the send log: if logging fails, re-running the same run id
    writes the same file and logs what is missing (never twice).

    Parameters
    ----------
    out
        The picks file (``.parquet``, or ``.csv``); the summary goes beside it (``summary_path``).
        ``None``: nothing is written.
    dry_run
        Write ``out`` but nothing to the store.

    The other parameters are ``plan_campaign``'s.
    """
    run = plan_campaign(campaign, bundle, data, placements=placements, store=store, now=now, run_id=run_id,
                        shard=shard, segments=segments, model_version=model_version, batch_size=batch_size,
                        progress=progress, clock=clock, index=index, workers=workers, picker=picker)
    run.summary["dry_run"] = dry_run
    if out is not None:
        run.out = run.write_picks(out)
    if store is not None and not dry_run:
        run.log(store)
    if out is not None:
        run.write_summary(summary_path(out))
    return run

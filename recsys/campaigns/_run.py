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

import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from recsys._io import atomic_write, atomic_write_text
from recsys.bundle import Bundle
from recsys.campaigns._audience import build_audience
from recsys.campaigns._config import Campaign
from recsys.campaigns._hash import holdout_mask, parse_shard, shard_mask
from recsys.campaigns._index import CampaignIndex, shared_index
from recsys.campaigns._picks import (
    CHECKED_STRATEGIES,
    PARALLEL_STRATEGIES,
    PickContext,
    candidates,
    rank_within,
)
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError
from recsys.rules import Block, PlacementRules, RuleSet
from recsys.rules._config import as_naive_utc
from recsys.store import Store

__all__ = [
    "CampaignRun",
    "check_campaign",
    "EXCLUSION_REASONS",
    "PICK_COLUMNS",
    "default_now",
    "default_run_id",
    "plan_campaign",
    "resolve_consent",
    "run_campaign",
    "summary_path",
    "summary_lines",
]

log = logging.getLogger(__name__)

EXCLUSION_REASONS: tuple[str, ...] = (
    "consent", "suppression", "erased", "frequency_cap", "no_picks", "holdout",
)
#: Columns of the exported picks file, in order.
PICK_COLUMNS: tuple[str, ...] = (
    "customer_id", "campaign", "rank", "item_id", "score", "reason", "source_item_id",
)
#: Fewest customers per batch when batches run in threads: below it, the fixed cost of each batch's
#: dataframe steps outweighs the overlap (CJ: 1,193 customers ran faster as one batch than as two).
MIN_PARALLEL_BATCH = 1000
_PICK_SCHEMA = {"customer_id": pl.String, "campaign": pl.String, "rank": pl.Int32, "item_id": pl.String,
                "score": pl.Float64, "reason": pl.String, "source_item_id": pl.String}


def _clock() -> datetime:
    """Wall-clock UTC, naive: the clock ``Store.log_sends`` stamps ``sent_at`` with."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def default_now(data: Dataset) -> datetime:
    """Midnight after the data's last purchase: "the morning after the data ends"."""
    last = data.purchases["ts"].max()
    if last is None:
        return _clock()
    day = last.date() if isinstance(last, datetime) else date.today()  # type: ignore[union-attr]
    return datetime(day.year, day.month, day.day) + timedelta(days=1)


def default_run_id(campaign: Campaign, day: date) -> str:
    """``<campaign name>-<YYYY-MM-DD>``: one email per campaign per day unless told otherwise."""
    return f"{campaign.name}-{day:%Y-%m-%d}"


def summary_path(out: str | Path) -> Path:
    """Where the run summary goes beside ``out``: ``picks.parquet`` → ``picks.summary.json``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.summary.json")


def resolve_consent(customer_ids: Sequence[str], data: Dataset, store: Store | None) -> np.ndarray:
    """Email consent per customer: store record, else the data set's flag, else ``data.consent_default``."""
    frame = pl.DataFrame({"customer_id": pl.Series(list(customer_ids), dtype=pl.String)})
    own = data.customers.select("customer_id", pl.col("email_consent").cast(pl.Boolean).alias("_data")) \
        .unique("customer_id", keep="last")
    frame = frame.join(own, on="customer_id", how="left", maintain_order="left")
    if store is not None:
        stored = store.consent()
        if stored:
            st = pl.DataFrame({"customer_id": list(stored), "_store": list(stored.values())},
                              schema={"customer_id": pl.String, "_store": pl.Boolean})
            frame = frame.join(st, on="customer_id", how="left", maintain_order="left")
    if "_store" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Boolean).alias("_store"))
    consent = frame.select(pl.coalesce("_store", "_data", pl.lit(bool(data.consent_default))))
    return consent.to_series().to_numpy().astype(bool)


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


def _pool(cand: pl.DataFrame, hist: pl.DataFrame, due: pl.DataFrame | None, campaign: Campaign,
          ctx: PickContext, *, checked: bool = False) -> pl.DataFrame:
    """Drop what the hard rules would drop anyway, then keep a bounded pool per customer.

    After ``PickContext.pickable`` (stock, excluded categories/items, bought before) the pool is the
    best ``n_picks`` per category and ``10 × n_picks`` per customer — all the rules can use for
    ``n_picks`` slots, barring soft-rule relaxation deep into one category.  Ties at the cut are kept.
    ``checked``: the strategy already applied ``pickable`` (it is idempotent; skipping saves a look-up
    of every candidate in the customers' whole purchase history).
    """
    if not checked:
        cand = ctx.pickable(cand, hist, due=due)
    if cand.height == 0:
        return cand
    n = campaign.n_picks
    # per (customer, category; -1 = none) as one integer key, ranked in numpy: polars' rank over
    # ~100k small groups costs several times more
    group = (cand["_c"].to_numpy().astype(np.int64) * (ctx.n_groups + 1)
             + ctx.item_group[cand["_i"].to_numpy()] + 1)
    in_category = pl.Series(rank_within(group, cand["score"]) <= n)
    return (cand.filter(in_category)
            .filter(pl.col("score").rank("min", descending=True).over("_c") <= 10 * n))


def _rules_history(hist: pl.DataFrame, cand: pl.DataFrame, rules: PlacementRules, campaign: Campaign,
                   ctx: PickContext) -> pl.DataFrame:
    """The purchases the business rules can act on, for speed on long histories (same lists as all of them).

    The rules read purchases for two things: "bought before" — only candidate items can be dropped,
    unless the fallback chain may bring in other items (``fill``) — and the upsell reference, the
    latest purchase per category (every row at that time: the rules pick among them).  Candidates in a
    category without a reference are out of band only for customers who have a reference somewhere,
    so customers with candidates but no usable reference in their candidates' categories get the
    latest rows of one category that gives them one (``_witness``).  Without ``fill`` the rules read
    nothing else from a reference (its value matters only for fallback items).
    """
    cols = ["_c", "_i", "ts", "price"]
    if campaign.fill or hist.height == 0:
        return hist.select(cols)
    parts = []
    if rules.exclude_bought_days is not None:
        # (customer, item) as one integer: a hash look-up instead of a two-column semi-join
        pair = pl.col("_c").cast(pl.Int64) * ctx.n_items + pl.col("_i")
        wanted_pairs = cand.select(pair.unique()).to_series().implode()
        parts.append(hist.filter(pair.is_in(wanted_pairs)))
    if rules.upsell.enabled:
        keys = (cand["_c"].to_numpy().astype(np.int64) * ctx.n_groups + ctx.item_group[cand["_i"].to_numpy()])
        # the latest rows of the wanted keys: a line is kept when its key is wanted and its time is its
        # key's latest (dense per-key arrays of the batch, no group-by)
        k, ts, last = ctx.latest_by_key(hist)
        want = np.zeros(len(last), dtype=bool)  # the last slot (lines without a category) stays False
        want[keys[(keys >= 0) & (keys < len(last) - 1)]] = True  # keys beyond: no purchase at all
        latest = hist.filter(pl.Series(want[k] & (ts == last[k])))
        parts.append(latest)
        # A witness changes nothing for a customer with a usable reference among these rows, nor for
        # one without candidates (no list either way): only the others need one.
        covered = _usable_keys(latest)["_c"].unique()
        need = cand["_c"].unique()
        need = need.filter(~need.is_in(covered.implode()))
        if need.len():
            parts.append(_witness(hist.filter(pl.col("_c").is_in(need.implode()))))
    if not parts:
        return hist.select(cols).clear()
    return pl.concat([p.select(cols) for p in parts]).unique()


def _usable_keys(latest: pl.DataFrame) -> pl.DataFrame:
    """``_k, _c`` of the keys whose latest rows give the rules a reference price.

    The rules take, per customer and category, the highest price paid at the latest time (the
    catalogue price when a line has none) and have no reference when any of those rows has no price
    at all — so a key is usable when every one of its latest rows is priced.
    """
    price = pl.col("price").fill_nan(None)
    paid = pl.when(price.is_not_null()).then(price).otherwise(pl.col("list_price")).fill_nan(None)
    return (latest.group_by("_k").agg(pl.col("_c").first(), paid.is_not_null().all().alias("_ok"))
            .filter("_ok").select("_k", "_c"))


def _witness(hist: pl.DataFrame) -> pl.DataFrame:
    """Per customer of ``hist``, the latest rows of their smallest category key that gives the rules a
    reference price (none when no key does): proof that the customer has a reference somewhere."""
    known = hist.filter(pl.col("_k").is_not_null())
    latest = known.filter(pl.col("ts") == pl.col("ts").max().over("_k"))
    smallest = _usable_keys(latest).group_by("_c").agg(pl.col("_k").min())["_k"]
    return latest.filter(pl.col("_k").is_in(smallest.implode()))


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


def _pressure(store: Store | None, campaign: Campaign, run_id: str,
              clock: datetime) -> tuple[set[str], pl.DataFrame | None]:
    """(customers at the frequency cap, recently sent (customer, item) pairs or None) — own run id ignored."""
    cap, resend = campaign.frequency_cap, campaign.resend_window_days
    if store is None or (cap is None and resend is None):
        return set(), None
    days = max(cap.per_days if cap else 0, resend or 0)
    sends = store.sends(since=clock - timedelta(days=days)).filter(
        ~pl.col("control") & (pl.col("run_id") != run_id))
    capped: set[str] = set()
    if cap is not None:
        capped = set(
            sends.filter(pl.col("sent_at") >= clock - timedelta(days=cap.per_days))
            .group_by("customer_id").agg(pl.col("run_id").n_unique().alias("emails"))
            .filter(pl.col("emails") >= cap.max_emails)["customer_id"].to_list()
        )
    recent = None
    if resend is not None:
        recent = (sends.filter(pl.col("sent_at") >= clock - timedelta(days=resend))
                  .select("customer_id", "item_id").unique())
    return capped, recent


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
    """
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
    ids = [c for c, keep in zip(audience, shard_mask(audience, shard_t)) if keep]
    timings["audience"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    reason, recent_sent = _exclusions(ids, data, store, campaign, run_id, clock)
    eligible = [c for c, r in zip(ids, reason) if r == ""]
    timings["consent_and_pressure"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    index = shared_index(index, bundle, data)
    timings["index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ctx = PickContext(bundle, data, now=now, rules=rules, exclude=campaign.exclude, index=index)
    ruleset = index.ruleset(rules)
    timings["prepare"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    picked, resend_removed = _pick(ctx, ruleset, campaign, eligible, recent_sent, batch_size, progress,
                                   workers)
    timings["picks"] = time.perf_counter() - t0

    picks, controls, excluded = _split(ids, reason, picked, campaign, run_id)
    seconds = time.perf_counter() - t_start
    summary = _summary(campaign, run_id=run_id, model_version=model_version, now=now, clock=clock,
                       shard=shard_t, audience_total=len(audience), audience=len(ids), reason=reason,
                       picks=picks, controls=controls, ctx=ctx, resend_removed=resend_removed,
                       timings=timings, seconds=seconds)
    summary["workers"] = workers
    log.info("campaign %s run %s: audience %d, recipients %d, left out %s (%.2fs)", campaign.name, run_id,
             len(ids), summary["recipients"], summary["excluded"], seconds)
    return CampaignRun(campaign, run_id, model_version, now, picks, controls, excluded, summary)


def _exclusions(ids: list[str], data: Dataset, store: Store | None, campaign: Campaign, run_id: str,
                clock: datetime) -> tuple[np.ndarray, pl.DataFrame | None]:
    """Per customer the first exclusion reason among consent, suppression, erased, frequency cap
    (``""`` = eligible), and the recently sent (customer, item) pairs of the re-send window."""
    reason = np.full(len(ids), "", dtype=object)
    reason[~resolve_consent(ids, data, store)] = "consent"
    if store is None:
        return reason, None
    suppressed = store.suppressed()
    capped, recent_sent = _pressure(store, campaign, run_id, clock)
    checks = (
        ("suppression", np.fromiter((c in suppressed for c in ids), dtype=bool, count=len(ids))),
        ("erased", np.asarray(store.is_erased(ids), dtype=bool) if ids else np.zeros(0, dtype=bool)),
        ("frequency_cap", np.fromiter((c in capped for c in ids), dtype=bool, count=len(ids))),
    )
    for code, mask in checks:
        reason[(reason == "") & mask] = code
    return reason, recent_sent


def _pick(ctx: PickContext, ruleset: RuleSet, campaign: Campaign, eligible: list[str],
          recent_sent: pl.DataFrame | None, batch_size: int, progress: bool,
          workers: int = 1) -> tuple[pl.DataFrame, int]:
    """Final picks of every eligible customer, batch by batch (``PICK_COLUMNS``), and how many candidate
    items the re-send window removed.

    With ``workers > 1`` (and a strategy in ``PARALLEL_STRATEGIES``) the audience is cut into at least
    that many batches, handled by a thread pool: polars and numpy release the GIL, so one batch's
    dataframe work overlaps another's Python.  Batches are independent (every step is per customer) and
    their results are concatenated in order, so the picks do not depend on the number of workers.
    """
    resend = recent_sent if recent_sent is not None and recent_sent.height else None
    parallel = (workers > 1 and campaign.strategy.kind in PARALLEL_STRATEGIES
                and len(eligible) >= 2 * MIN_PARALLEL_BATCH)
    if parallel:
        batch_size = min(batch_size, max(MIN_PARALLEL_BATCH, -(-len(eligible) // workers)))

    def one(batch_hist: tuple[list[str], pl.DataFrame]) -> tuple[int, pl.DataFrame, int]:
        batch, hist = batch_hist
        return (len(batch), *_pick_batch(ctx, ruleset, campaign, batch, hist, resend))

    parts, removed = [], 0
    batches = ctx.batches(eligible, batch_size)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="campaign") if parallel else None
    with tqdm(total=len(eligible), desc=f"campaign {campaign.name}", unit="customer",
              disable=not progress) as bar, pool or contextlib.nullcontext():
        # results in batch order either way (a thread pool's map submits every batch, yields in order)
        for size, out, gone in (pool.map(one, batches) if pool else map(one, batches)):
            parts.append(out)
            removed += gone
            bar.update(size)
    if not parts:
        return pl.DataFrame(schema=_PICK_SCHEMA), removed
    return pl.concat(parts), removed


def _pick_batch(ctx: PickContext, ruleset: RuleSet, campaign: Campaign, batch: list[str], hist: pl.DataFrame,
                resend: pl.DataFrame | None) -> tuple[pl.DataFrame, int]:
    """One batch's picks (``PICK_COLUMNS``) and how many candidate items the re-send window removed."""
    rules = ruleset.rules
    removed = 0
    cand, due = candidates(ctx, campaign, batch, hist)
    checked = campaign.strategy.kind in CHECKED_STRATEGIES
    cand = _pool(cand, hist, due, campaign, ctx, checked=checked)
    if resend is not None and cand.height:
        before = cand.height
        cand = cand.join(ctx.codes_of_pairs(resend, batch), on=["_c", "_i"], how="anti")
        removed += before - cand.height
    # fallback rows may be recent sends: ask for as many more as a customer has recent sends
    extra = 0
    if resend is not None and campaign.fill:
        mine = resend.join(pl.DataFrame({"customer_id": batch}), on="customer_id", how="semi")
        extra = int(mine.group_by("customer_id").len()["len"].max() or 0) if mine.height else 0
    # the candidates and purchases carry the index's codes (the rule set is over the same catalogue)
    out = ruleset.apply_codes(ctx.with_source_ids(cand), batch, n=campaign.n_picks + extra, now=ctx.now,
                              replenish_due=due, history=_rules_history(hist, cand, rules, campaign, ctx))
    if extra:
        out = (out.join(resend, on=["customer_id", "item_id"], how="anti", maintain_order="left")
               .group_by("customer_id", maintain_order=True).head(campaign.n_picks)
               .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("customer_id")
                             .alias("rank")))
    return out.select(
        "customer_id", pl.lit(campaign.name, pl.String).alias("campaign"),
        pl.col("rank").cast(pl.Int32), "item_id", pl.col("score").cast(pl.Float64),
        pl.col("reason_type").alias("reason"), "source_item_id",
    ), removed


def _split(ids: list[str], reason: np.ndarray, picked: pl.DataFrame, campaign: Campaign,
           run_id: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Mark "no picks", draw the control group among the rest; ``(picks, controls, excluded)``.

    ``reason`` is updated in place.
    """
    counts = dict(picked.group_by("customer_id").len().iter_rows())
    has_picks = np.fromiter((counts.get(c, 0) >= campaign.min_picks for c in ids), dtype=bool, count=len(ids))
    reason[(reason == "") & ~has_picks] = "no_picks"
    left = [c for c, r in zip(ids, reason) if r == ""]
    control = holdout_mask(left, campaign.holdout_share, campaign=campaign.name, run_id=run_id)
    control_ids = {c for c, k in zip(left, control) if k}
    reason[np.fromiter((c in control_ids for c in ids), dtype=bool, count=len(ids))] = "holdout"
    recipients = pl.Series([c for c, r in zip(ids, reason) if r == ""], dtype=pl.String).implode()
    in_control = pl.Series(sorted(control_ids), dtype=pl.String).implode()
    picks = picked.filter(pl.col("customer_id").is_in(recipients)).select(list(PICK_COLUMNS))
    controls = picked.filter(pl.col("customer_id").is_in(in_control)).select(list(PICK_COLUMNS))
    excluded = pl.DataFrame({"customer_id": [c for c, r in zip(ids, reason) if r],
                             "reason": [r for r in reason if r]},
                            schema={"customer_id": pl.String, "reason": pl.String})
    return picks, controls, excluded


def _summary(campaign: Campaign, *, run_id: str, model_version: str | None, now: datetime, clock: datetime,
             shard: tuple[int, int] | None, audience_total: int, audience: int, reason: np.ndarray,
             picks: pl.DataFrame, controls: pl.DataFrame, ctx: PickContext, resend_removed: int,
             timings: dict[str, float], seconds: float) -> dict[str, Any]:
    excluded = {r: int((reason == r).sum()) for r in EXCLUSION_REASONS}
    per_customer = picks.group_by("customer_id").len()["len"]
    distribution = {str(k): int(v) for k, v in per_customer.value_counts().sort("len").iter_rows()}
    with_cat = picks.join(ctx.items.select("item_id", "category"), on="item_id", how="left")
    mix = with_cat.group_by("category").len().sort(["len", "category"], descending=[True, False],
                                                     nulls_last=True)
    reasons = picks.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    recipients = per_customer.len()
    return {
        "campaign": campaign.name,
        "source": campaign.source,
        "run_id": run_id,
        "model_version": model_version,
        "strategy": campaign.strategy.kind,
        "placement": campaign.placement,
        "now": now.isoformat(),
        "clock": clock.isoformat(timespec="seconds"),
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "audience_total": audience_total,
        "audience": audience,
        "excluded": excluded,
        "recipients": recipients,
        "controls": controls["customer_id"].n_unique(),
        "picks": picks.height,
        "picks_per_customer": {
            "mean": round(picks.height / recipients, 3) if recipients else 0.0,
            "min": int(per_customer.min()) if recipients else 0,  # type: ignore[arg-type]
            "max": int(per_customer.max()) if recipients else 0,  # type: ignore[arg-type]
            "distribution": distribution,
        },
        "category_mix": {str(c): int(n) for c, n in mix.iter_rows()},
        "reason_mix": {str(r): int(n) for r, n in reasons.iter_rows()},
        "resend_window_items_removed": resend_removed,
        "folded_in_purchases": ctx.folded_in,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "seconds": round(seconds, 3),
        "customers_per_second": round(audience / seconds, 1) if seconds > 0 else None,
    }


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The human-readable summary every run prints."""
    ex = summary["excluded"]
    mix = summary["category_mix"]
    top = ", ".join(f"{c} {n}" for c, n in list(mix.items())[:8]) + (" …" if len(mix) > 8 else "")
    ppc = summary["picks_per_customer"]
    lines = [
        f"campaign {summary['campaign']} · run {summary['run_id']} · model {summary['model_version']} · "
        f"now {summary['now']}" + (f" · shard {summary['shard']}" if summary.get("shard") else ""),
        f"audience {summary['audience']:,}" + (f" (of {summary['audience_total']:,} before sharding)"
                                                 if summary.get("shard") else ""),
        "left out: " + ", ".join(f"{r.replace('_', ' ')} {ex[r]:,}" for r in EXCLUSION_REASONS),
        f"recipients {summary['recipients']:,} · controls {summary['controls']:,} · "
        f"picks {summary['picks']:,} "
        f"({ppc['mean']} per customer, min {ppc['min']}, max {ppc['max']})",
        f"category mix: {top or '-'}",
    ]
    if summary.get("resend_window_items_removed"):
        lines.append(f"re-send window removed {summary['resend_window_items_removed']:,} candidate items")
    if "logged_rows" in summary:
        lines.append(f"send log: {summary['logged_rows']:,} rows written"
                     + (f", {summary['already_logged_rows']:,} already logged (same run id)"
                        if summary.get("already_logged_rows") else ""))
    lines.append(f"{summary['seconds']:.2f}s ({summary['customers_per_second'] or 0:,.0f} customers/s)")
    return lines


def run_campaign(
    campaign: Campaign,
    bundle: Bundle,
    data: Dataset,
    *,
    placements: Mapping[str, PlacementRules],
    store: Store | None = None,
    out: str | Path | None = None,
    dry_run: bool = False,
    **kwargs: Any,
) -> CampaignRun:
    """``plan_campaign``, then write ``out`` (+ summary JSON beside it) and log the sends unless ``dry_run``.

    The picks file is written before the send log: if logging fails, re-running the same run id
    writes the same file and logs what is missing (never twice).
    """
    run = plan_campaign(campaign, bundle, data, placements=placements, store=store, **kwargs)
    run.summary["dry_run"] = dry_run
    if out is not None:
        run.write_picks(out)
    if store is not None and not dry_run:
        run.log(store)
    if out is not None:
        run.write_summary(summary_path(out))
    return run

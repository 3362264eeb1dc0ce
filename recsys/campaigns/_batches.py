"""The picks of a run's eligible customers, batch by batch: strategy candidates → bounded pool →
re-send window → the placement's business rules (``RuleSet.apply_codes``).

Batches are independent (every step is per customer), so they may run in threads
(``PARALLEL_STRATEGIES``); their results are concatenated in order, so the picks never depend on the
number of workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from recsys.campaigns._config import Campaign
from recsys.campaigns._context import PickContext
from recsys.campaigns._strategies import CHECKED_STRATEGIES, PARALLEL_STRATEGIES, candidates
from recsys.campaigns._util import max_int, rank_within
from recsys.reasons import item_names, with_reason_text
from recsys.rules import PlacementRules, RuleSet

__all__ = ["MIN_PARALLEL_BATCH", "pick"]

#: Fewest customers per batch when batches run in threads: below it, the fixed cost of each batch's
#: dataframe steps outweighs the overlap (CJ: 1,193 customers ran faster as one batch than as two).
MIN_PARALLEL_BATCH = 1000
_PICK_SCHEMA = {"customer_id": pl.String, "campaign": pl.String, "rank": pl.Int32, "item_id": pl.String,
                "score": pl.Float64, "reason": pl.String, "source_item_id": pl.String, "reason_text": pl.String,
                "source_date": pl.Date, "due_date": pl.Date}


def pick(ctx: PickContext, ruleset: RuleSet, campaign: Campaign, eligible: list[str],
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

    names = item_names(ctx.data.items)

    def one(batch_hist: tuple[list[str], pl.DataFrame]) -> tuple[int, pl.DataFrame, int]:
        batch, hist = batch_hist
        return (len(batch), *_pick_batch(ctx, ruleset, campaign, batch, hist, resend, names))

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
                resend: pl.DataFrame | None, names: Mapping[str, str | None]) -> tuple[pl.DataFrame, int]:
    """One batch's picks (``PICK_COLUMNS``) and how many candidate items the re-send window removed.

    Each pick carries its reason in the service's words (``recsys.reasons``), the day of the purchase
    behind it and, for items due again (``replenishment``), the predicted next-purchase day."""
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
        extra = max_int(mine.group_by("customer_id").len()["len"]) if mine.height else 0
    # the candidates and purchases carry the index's codes (the rule set is over the same catalogue)
    out = ruleset.apply_codes(ctx.with_source_ids(cand), batch, n=campaign.n_picks + extra, now=ctx.now,
                              replenish_due=due, history=_rules_history(hist, cand, rules, campaign, ctx))
    if extra and resend is not None:  # (extra > 0 only with recent sends)
        out = (out.join(resend, on=["customer_id", "item_id"], how="anti", maintain_order="left")
               .group_by("customer_id", maintain_order=True).head(campaign.n_picks)
               .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("customer_id")
                             .alias("rank")))
    out = with_reason_text(out, names)
    if due is not None and "due_ts" in due.columns and out.height:
        out = out.join(due.select("customer_id", "item_id", pl.col("due_ts").cast(pl.Date).alias("due_date")),
                       on=["customer_id", "item_id"], how="left", maintain_order="left")
    else:
        out = out.with_columns(pl.lit(None, pl.Date).alias("due_date"))
    return out.select(
        "customer_id", pl.lit(campaign.name, pl.String).alias("campaign"),
        pl.col("rank").cast(pl.Int32), "item_id", pl.col("score").cast(pl.Float64),
        pl.col("reason_type").alias("reason"), "source_item_id", "reason_text",
        pl.col("source_ts").cast(pl.Date).alias("source_date"), "due_date",
    ), removed


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

"""Pick strategies: candidate items per customer for one campaign, on a batch of customers at a time.

Why strategies of their own instead of the served "for you" list: a campaign email has a theme
("you bought trousers — here are belts and shoes", "time to restock socks") and a reason the copy can
name ("because you bought *Slim chinos 12* on 3 May").  Each strategy produces *candidates* with a
score, a reason type and the source purchase; the placement's business rules (``recsys.rules``) then
choose the final ``n_picks`` exactly as they do on the website (stock, blocks, never-bought-before,
caps per category, diversity).

All strategies are vectorised polars joins over the batch's purchases — no Python loop per customer,
group-bys on integer codes rather than strings — so a full customer base runs in seconds.  They read
the customers' purchases from the *data set* (fresh up to the run's ``now``), and the *bundle* for
what is learned about items and categories (complement graph, co-purchase neighbours, bestsellers,
repeat intervals).  The two strategies that need per-customer model state (``replenishment``,
``winback``) first fold the purchases newer than the bundle into it (``PickContext.refresh``), as the
web service does with live events.

``candidates`` is the entry point; ``STRATEGIES`` maps each kind to its function.  What the
strategies read (``PickContext``) is in ``_context``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from recsys.campaigns._abandoned import abandoned_cart_candidates
from recsys.campaigns._config import Campaign
from recsys.campaigns._context import CANDIDATE_SCHEMA, PickContext, positions

__all__ = ["CHECKED_STRATEGIES", "PARALLEL_STRATEGIES", "STRATEGIES", "candidates"]

_RRF_K = 20.0
_SECONDS_PER_DAY = 86_400.0


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDIDATE_SCHEMA)


def _age_days(now: datetime) -> pl.Expr:
    return (pl.lit(now, pl.Datetime("us")) - pl.col("ts")).dt.total_seconds() / _SECONDS_PER_DAY


def _best_per_key(frame: pl.DataFrame, key: str, score: str, tie: str) -> pl.DataFrame:
    """One row per ``key``: the highest ``score``, ties to the smallest ``tie`` (window filters, no sort).

    ``key`` and ``tie`` should be integer columns (a combined key, an item's ``PickContext.item_rank``):
    windows over one integer column cost half those over several or over strings.
    """
    best = frame.filter(pl.col(score) == pl.col(score).max().over(key))
    best = best.filter(pl.col(tie) == pl.col(tie).min().over(key))
    return best.unique(key, keep="any")


#: Strategies whose candidates already passed ``PickContext.pickable`` (the run need not check again).
CHECKED_STRATEGIES: frozenset[str] = frozenset({"complements"})
#: Strategies whose batches may run in threads at once: they read the bundle's item tables and the batch's
#: purchases only.  ``replenishment`` and ``winback`` ask the bundle's models per customer (and fold
#: events into them first), which is not promised to be thread-safe: they run one batch at a time.
PARALLEL_STRATEGIES: frozenset[str] = frozenset({"complements", "upsell", "new_in_category", "welcome",
                                                  "abandoned_cart"})

#: (candidates, replenish_due or None)
_Result = tuple[pl.DataFrame, pl.DataFrame | None]
StrategyFn = Callable[[PickContext, Campaign, Sequence[str], pl.DataFrame], _Result]


def _lookback(campaign: Campaign, default: int) -> int:
    s, bc = campaign.strategy, campaign.audience.bought_category
    return s.lookback_days or (bc.within_days if bc is not None else default)


def _latest_per_category(hist: pl.DataFrame, ctx: PickContext, since: datetime | None = None) -> pl.DataFrame:
    """Each customer's most recent purchase per category (at or after ``since``, when given):
    ``_k, _c, _g, _i, ts, paid``.

    Ties on time go to the smallest item id; ``paid`` is the highest unit price paid for it then
    (falling back to the catalogue price; null when neither is known).  Array passes over the batch's
    dense customer × category keys (``PickContext.latest_by_key``; ties by the item's integer
    ``item_rank``), no group-by or window.
    """
    k, ts, last = ctx.latest_by_key(hist)
    at_latest = ts == last[k]  # (lines without a category read the last slot: never equal)
    if since is not None:
        at_latest &= ts >= _epoch_us(since)
    rows = np.flatnonzero(at_latest)
    key = k[rows]
    item = hist["_i"].fill_null(0).to_numpy()[rows]  # (lines with a category have an item code)
    rank = ctx.item_rank.to_numpy()[item]
    smallest = np.full(len(last), np.iinfo(np.int64).max)
    np.minimum.at(smallest, key, rank)
    keep = rank == smallest[key]
    rows, key = rows[keep], key[keep]
    paid_line = pl.coalesce("price", "list_price").fill_nan(None).fill_null(np.nan)
    price = hist.select("price", "list_price")[rows].select(paid_line).to_series().to_numpy()
    paid = np.full(len(last), np.nan)
    np.fmax.at(paid, key, price)  # (NaN only where every line of the key has no price)
    first = np.full(len(last), -1, dtype=np.int64)
    first[key[::-1]] = rows[::-1]  # the first line of each key (later writes win: reversed)
    keys = np.flatnonzero(first >= 0)
    return hist.select("_c", "_g", "_i", "ts")[first[keys]].with_columns(
        pl.Series("_k", keys), pl.Series("paid", paid[keys], nan_to_null=True))


def _epoch_us(ts: datetime) -> int:
    """Microseconds since the epoch of a naive datetime (the int64 view of ``Datetime("us")``)."""
    return (ts - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def _as_candidates(frame: pl.DataFrame, reason: str | pl.Expr) -> pl.DataFrame:
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    return frame.select(
        pl.col("_c").cast(pl.Int32),
        pl.col("_i").cast(pl.Int32),
        pl.col("score").cast(pl.Float64),
        reason_expr.cast(pl.String).alias("reason_type"),
        pl.col("_src").cast(pl.Int32),
        pl.col("source_ts").cast(pl.Datetime("us")),
    )


def _fuse(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Reciprocal-rank fusion per customer of candidate lists on different score scales.

    Each list ranks its items per customer (ties share the best rank, so the result does not depend
    on row order); an item's fused score is Σ 1/(20 + rank) and its reason and source are those of the
    list ranking it best (first list on ties).
    """
    parts = [p for p in parts if p.height]
    if not parts:
        return _empty()
    if len(parts) == 1:
        return parts[0]
    ranked = [
        p.with_columns(pl.col("score").rank("min", descending=True).over("_c").alias("_r"),
                       pl.lit(k, pl.Int64).alias("_p"))
        for k, p in enumerate(parts)
    ]
    both = pl.concat(ranked).with_columns(
        (pl.col("_c").cast(pl.Int64) * (1 << 32) + pl.col("_i")).alias("_ci"),  # one integer key
        (pl.col("_r").cast(pl.Int64) * len(parts) + pl.col("_p")).alias("_o"),  # (rank, list) as one number
        (1.0 / (_RRF_K + pl.col("_r"))).alias("_w"),
    ).sort("_ci", "_o")
    # Per (customer, item), sorted by (rank, list): the first row carries reason and source, the scores
    # add up over lists.  (A sort and a group-by beat windows over ~200k small groups.)
    total = both.group_by("_ci", maintain_order=True).agg(pl.col("_w").sum())["_w"]
    first = both.unique("_ci", keep="first", maintain_order=True)
    return first.with_columns(total.alias("score")).select(list(CANDIDATE_SCHEMA))


def _complements(ctx: PickContext, campaign: Campaign, ids: Sequence[str], hist: pl.DataFrame) -> _Result:
    """Bestsellers of complement categories of recent purchases + items bought with those purchases."""
    s = campaign.strategy
    lookback = _lookback(campaign, 90)
    bc = campaign.audience.bought_category
    sources = s.source_categories or ([bc.category] if bc is not None else [])
    recent = hist.filter((pl.col("ts") >= ctx.now - timedelta(days=lookback)) & pl.col("_k").is_not_null())
    if sources:
        source_g = ctx.category_codes.filter(pl.col("category").is_in(sources))["_g"].implode()
        recent = recent.filter(pl.col("_g").is_in(source_g))
    # one row per (customer, item): its latest recent purchase, weighted by recency
    half_life = max(lookback / 2.0, 1.0)
    recent = (
        recent.group_by("_c", "_i")
        .agg(pl.col("_g", "_k").first(), pl.col("ts").max())
        .with_columns((0.5 ** (_age_days(ctx.now) / half_life)).alias("recency"))
    )
    edges = ctx.edges(s.top_complements)
    if s.categories:
        edges = edges.filter(pl.col("target").is_in(s.categories))

    # category complements: the latest purchase of each source category triggers its complement categories
    recent = recent.with_columns(pl.lit(ctx.item_rank).gather(pl.col("_i")).alias("_rank"))
    trig = _best_per_key(recent, "_k", "ts", "_rank")
    pairs = (
        trig.join(edges.select("source_g", "target_g", "lift"), left_on="_g", right_on="source_g")
        .with_columns((pl.col("_c").cast(pl.Int64) * ctx.n_groups + pl.col("target_g")).alias("_tk"))
    )
    # a complement already bought on/after the trigger is fulfilled: compare with the latest purchase in
    # each (customer, target category) (none: the int64 minimum, below every time; triggers come from
    # the customer's own purchases, so every key is within the batch's key space)
    _, _, last = ctx.latest_by_key(hist)
    open_ = last[pairs["_tk"].to_numpy()] < pairs["ts"].to_numpy().view(np.int64)
    pairs = pairs.filter(pl.Series(open_)).with_columns((pl.col("lift") * pl.col("recency")).alias("w"))
    # one trigger per (customer, target): the strongest (ties: smallest source item); then the customer's
    # best 2 × n_picks target categories — more can never reach the email
    pairs = _best_per_key(pairs, "_tk", "w", "_rank")
    pairs = pairs.filter(pl.col("w").rank("min", descending=True).over("_c") <= 2 * campaign.n_picks)
    cat_part = (
        pairs.select("_c", "target_g", "w", pl.col("_i").alias("_src"), pl.col("ts").alias("source_ts"))
        .join(ctx.bestsellers.filter(pl.col("cat_rank") <= s.per_category), left_on="target_g", right_on="_g")
        .with_columns((pl.col("w") * pl.col("pop_norm")).alias("score"))
    )
    pool = 10 * campaign.n_picks
    # (customer, item) is unique: one row per target category
    parts = [_top(ctx.pickable(_as_candidates(cat_part, "complements_category"), hist), pool)]

    # bought with: co-purchase neighbours of every recent purchase in the source categories
    if s.bought_with != "off" and recent.height:
        bw = recent.select("_c", "_i", pl.col("_i").alias("_src"), pl.col("ts").alias("source_ts"),
                           pl.col("_g").alias("source_g"), "recency", "_rank")
        bw = bw.join(ctx.pickable_neighbours(), on="_i").filter(pl.col("target_g") != pl.col("source_g"))
        if s.bought_with == "complement_categories":
            bw = bw.join(edges.select("source_g", "target_g"), on=["source_g", "target_g"], how="semi")
        elif s.categories:
            keep = ctx.category_codes.filter(pl.col("category").is_in(s.categories))["_g"].implode()
            bw = bw.filter(pl.col("target_g").is_in(keep))
        bw = bw.with_columns((pl.col("nb_score") * pl.col("recency")).alias("score"))
        bw = bw.drop("_i").rename({"nb_i": "_i"})
        bw = ctx.pickable(bw, hist).with_columns(
            (pl.col("_c").cast(pl.Int64) * ctx.n_items + pl.col("_i")).alias("_ci"))
        bw = _top(_best_per_key(bw, "_ci", "score", "_rank"), pool)
        parts.append(_as_candidates(bw, "bought_with"))
    return _fuse(parts), None


def _welcome(ctx: PickContext, campaign: Campaign, ids: Sequence[str], hist: pl.DataFrame) -> _Result:
    """Bestsellers of the category of each customer's first purchase."""
    s = campaign.strategy
    first = hist.filter(pl.col("_g").is_not_null()).filter(pl.col("ts") == pl.col("ts").min().over("_c"))
    first = (first.with_columns(pl.lit(ctx.item_rank).gather(pl.col("_i")).alias("_rank"))  # smallest id
             .filter(pl.col("_rank") == pl.col("_rank").min().over("_c")).unique("_c", keep="any"))
    cand = (
        first.select("_c", "_g", pl.col("_i").alias("_src"), pl.col("ts").alias("source_ts"))
        .join(ctx.bestsellers.filter(pl.col("cat_rank") <= s.per_category + 1), on="_g")
        .filter(pl.col("_i") != pl.col("_src"))
        .rename({"pop_norm": "score"})
    )
    return _as_candidates(cand, "welcome"), None


def _upsell(ctx: PickContext, campaign: Campaign, ids: Sequence[str], hist: pl.DataFrame) -> _Result:
    """Bestsellers of categories the customer bought, priced ``price_ratio`` × what they last paid there."""
    s = campaign.strategy
    lookback = _lookback(campaign, 365)
    lo, hi = s.price_ratio
    last = (
        _latest_per_category(hist, ctx, since=ctx.now - timedelta(days=lookback))
        .filter(pl.col("paid").is_not_null() & (pl.col("paid") > 0))
        .with_columns((0.5 ** (_age_days(ctx.now) / max(lookback / 2.0, 1.0))).alias("recency"))
    )
    cand = (
        last.select("_c", "_g", "paid", "recency", pl.col("_i").alias("_src"),
                    pl.col("ts").alias("source_ts"))
        .join(ctx.bestsellers.filter(pl.col("cat_rank") <= s.per_category), on="_g")
        .filter((pl.col("price") >= lo * pl.col("paid")) & (pl.col("price") <= hi * pl.col("paid"))
                & (pl.col("_i") != pl.col("_src")))
        .with_columns((pl.col("pop_norm") * pl.col("recency")).alias("score"))
    )
    return _as_candidates(cand, "upsell"), None


def _new_in_category(ctx: PickContext, campaign: Campaign, ids: Sequence[str], hist: pl.DataFrame) -> _Result:
    """New items (first sold recently) in the customer's favourite categories (90-day decayed share)."""
    s = campaign.strategy
    last = _latest_per_category(hist, ctx).select("_k", pl.col("_i").alias("_src"),
                                                  pl.col("ts").alias("source_ts"))
    fav = (
        hist.filter(pl.col("_k").is_not_null())
        .with_columns((0.5 ** (_age_days(ctx.now) / 90.0)).alias("w"))
        .group_by("_k").agg(pl.col("_c", "_g").first(), pl.col("w").sum())
        .with_columns((pl.col("w") / pl.col("w").sum().over("_c")).alias("share"))
    )
    fav = _top_per_customer(fav, "share", "_g", s.top_categories).join(last, on="_k")
    new = ctx.new_items(s.new_within_days)
    new = new.filter(pl.col("new_norm").rank("min", descending=True).over("_g") <= s.per_category)
    cand = fav.join(new, on="_g").with_columns((pl.col("share") * pl.col("new_norm")).alias("score"))
    return _as_candidates(cand, "new_in_category"), None


def _top(frame: pl.DataFrame, k: int) -> pl.DataFrame:
    """Rows whose score ranks in the best ``k`` of their customer (ties at the cut kept)."""
    return frame.filter(pl.col("score").rank("min", descending=True).over("_c") <= k)


def _top_per_customer(frame: pl.DataFrame, score: str, tie: str, k: int) -> pl.DataFrame:
    """The ``k`` best rows per ``_c`` by ``score`` (ties: smallest ``tie``), deterministic."""
    return (frame.sort(["_c", score, tie], descending=[False, True, False])
            .group_by("_c", maintain_order=True).head(k))


def _replenishment(ctx: PickContext, campaign: Campaign, ids: Sequence[str], hist: pl.DataFrame) -> _Result:
    """Items due again: the buy-again model's predicted next purchase (``BuyAgain.due_dates``: the last
    purchase — of the category, for replenishable ones — plus the expected interval) lies within
    ``due_within_days`` of ``now``, or the days since that purchase within ``due_ratio`` × the interval."""
    s = campaign.strategy
    ba = ctx.hybrid.buy_again
    if ba is None:
        return _empty(), None
    ctx.refresh()
    if s.categories:
        repl = list(s.categories)
    else:
        table = ba.replenishable_categories()
        repl = table.filter(pl.col("replenishable"))["category"].to_list()
    if not repl:
        return _empty(), None
    rec = ba.recommend_with_sources(list(ids), 50, at=ctx.now, on_unknown="empty")
    now = pl.lit(ctx.now, pl.Datetime("us"))
    # days from the predicted next purchase to now (negative: not yet due)
    late = (now - pl.col("due_ts")).dt.total_seconds() / _SECONDS_PER_DAY
    if s.due_within_days is not None:
        before, after = s.due_within_days
        window = (late >= -before) & (late <= after)
    else:  # days since the purchase the due-ness counts from ÷ expected interval
        lo, hi = s.due_ratio
        ratio = 1.0 + late / pl.col("expected_interval_days")
        window = (ratio >= lo) & (ratio <= hi)
    cand = (
        rec.join(ctx.items.select("item_id", "_i", "category"), on="item_id")
        .filter(pl.col("category").is_in(repl))
        .filter(window)
        .with_columns(pl.col("_i").alias("_src"), pl.col("last_bought_ts").alias("source_ts"))
        .join(positions(ids), on="customer_id")
    )
    due = cand.select("customer_id", "item_id", pl.lit(True).alias("due"), "due_ts")
    return _as_candidates(cand, "replenish_due"), due


def _winback(ctx: PickContext, campaign: Campaign, ids: Sequence[str], hist: pl.DataFrame) -> _Result:
    """The customer's personal hybrid ranking, restricted to items they never bought."""
    ctx.refresh()
    known = [c for c in ids if c in ctx.hybrid.history]
    if not known:
        return _empty(), None
    ranked = ctx.hybrid.rank(known, ctx.now)
    codes = ctx.items.select("item_id", "_i")
    cand = (ranked.join(codes, on="item_id").join(positions(ids), on="customer_id")
            .join(hist.select("_c", "_i").unique(), on=["_c", "_i"], how="anti")
            .join(codes.rename({"item_id": "source_item_id", "_i": "_src"}), on="source_item_id", how="left"))
    return _as_candidates(cand, pl.col("reason_type")), None


STRATEGIES: dict[str, StrategyFn] = {
    "complements": _complements,
    "replenishment": _replenishment,
    "upsell": _upsell,
    "new_in_category": _new_in_category,
    "welcome": _welcome,
    "winback": _winback,
    "abandoned_cart": abandoned_cart_candidates,  # recsys.campaigns._abandoned
}


def candidates(ctx: PickContext, campaign: Campaign, customer_ids: Sequence[str],
               hist: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Candidates of ``campaign.strategy`` for a batch: ``(candidates, replenish_due or None)``.

    ``hist`` is the batch's purchases from ``PickContext.batches``.  Candidates follow
    ``CANDIDATE_SCHEMA``, one row per (customer, item), catalogue items only, restricted to
    ``strategy.categories`` when given.
    """
    strategy = campaign.strategy
    cand, due = STRATEGIES[strategy.kind](ctx, campaign, customer_ids, hist)
    if strategy.categories and cand.height:
        keep = ctx.category_codes.filter(pl.col("category").is_in(strategy.categories))["_g"].to_numpy()
        cand = cand.filter(pl.Series(np.isin(ctx.item_group[cand["_i"].to_numpy()], keep)))
    return cand, due

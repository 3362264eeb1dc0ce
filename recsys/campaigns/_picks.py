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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from recsys.bundle import Bundle
from recsys.campaigns._codes import codes_of
from recsys.campaigns._config import Campaign, Exclusions
from recsys.campaigns._index import CampaignIndex, shared_index
from recsys.dataset import Dataset
from recsys.rules import PlacementRules
from recsys.rules._engine import unique_sorted

__all__ = [
    "PickContext", "STRATEGIES", "CHECKED_STRATEGIES", "PARALLEL_STRATEGIES", "candidates", "rank_within",
    "CANDIDATE_SCHEMA",
]

#: Candidate columns, integers only: ``_c`` is the customer's position in its batch, ``_i`` the item's
#: catalogue code, ``_src`` the code of the purchase that explains it (null: none).  Ids are attached to
#: the few rows that reach the rules (``PickContext.with_source_ids``), not carried through every step.
CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "_c": pl.Int32(),
    "_i": pl.Int32(),
    "score": pl.Float64(),
    "reason_type": pl.String(),
    "_src": pl.Int32(),
    "source_ts": pl.Datetime("us"),
}
_RRF_K = 20.0
#: Largest per-batch purchase bitmap (batch customers × catalogue items / 8); beyond it, hash sets.
MAX_BITMAP_BYTES = 256 * 1024 * 1024
_SECONDS_PER_DAY = 86_400.0


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDIDATE_SCHEMA)


def _age_days(now: datetime) -> pl.Expr:
    return (pl.lit(now, pl.Datetime("us")) - pl.col("ts")).dt.total_seconds() / _SECONDS_PER_DAY


def rank_within(group: np.ndarray, score: pl.Series) -> np.ndarray:
    """``score.rank("min", descending=True).over(group)`` in numpy (null scores rank last of all).

    Why: polars ranks window by window, which over ~100k small groups (customer × category) costs
    several times one two-key sort plus a few array passes.  NaN ranks above every number and ties
    share the best rank, as in polars; a null score gets the largest int64 (polars: null, which no
    ``<= n`` filter keeps either).
    """
    n = len(group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    s = score.cast(pl.Float64)
    # (``nulls_last`` only when there are nulls: it costs polars a slower sort, ~2.5× on 200k rows; the
    # order among equal (group, score) pairs is free, they share a rank)
    order = (pl.DataFrame({"g": group, "s": s})
             .select(pl.arg_sort_by(["g", "s"], descending=[False, True], nulls_last=bool(s.null_count())))
             .to_series().to_numpy())
    g = group[order]
    v = s.fill_null(np.nan).to_numpy()[order]
    null = s.is_null().to_numpy()[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    same = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]) & (null[1:] == null[:-1]))
    new_value = new_group.copy()
    new_value[1:] |= ~same
    at = np.arange(n)
    rank = (np.maximum.accumulate(np.where(new_value, at, 0))
            - np.maximum.accumulate(np.where(new_group, at, 0)) + 1)
    rank[null] = np.iinfo(np.int64).max
    out = np.empty(n, dtype=np.int64)
    out[order] = rank
    return out


def _best_per_key(frame: pl.DataFrame, key: str, score: str, tie: str) -> pl.DataFrame:
    """One row per ``key``: the highest ``score``, ties to the smallest ``tie`` (window filters, no sort).

    ``key`` and ``tie`` should be integer columns (a combined key, an item's ``PickContext.item_rank``):
    windows over one integer column cost half those over several or over strings.
    """
    best = frame.filter(pl.col(score) == pl.col(score).max().over(key))
    best = best.filter(pl.col(tie) == pl.col(tie).min().over(key))
    return best.unique(key, keep="any")


class PickContext:
    """What every strategy needs for one run: the shared ``CampaignIndex`` plus what depends on ``now``,
    the placement's rules and the campaign's exclusions.

    Parameters
    ----------
    bundle
        The loaded model bundle (generators, ranker, history).
    data
        The data set: its purchases before ``now`` are the customers' facts, its items the catalogue
        (fresher stock flags than the bundle's copy; items without a list price get the median price
        paid for them).
    now
        Reference time of the run (naive UTC).
    rules, exclude
        The placement's rules and the campaign's exclusions: ``pickable`` drops the candidates their
        hard rules would drop anyway, so strategies can cut their candidate lists early.
    index
        The ``CampaignIndex`` of ``(bundle, data)`` shared by several runs; built here when ``None``.
    """

    def __init__(self, bundle: Bundle, data: Dataset, *, now: datetime, rules: PlacementRules | None = None,
                 exclude: Exclusions | None = None, index: CampaignIndex | None = None) -> None:
        index = shared_index(index, bundle, data)
        self.index = index
        self.bundle = bundle
        self.hybrid = bundle.hybrid
        self.data = data
        self.now = now
        # the shared tables, under the names the strategies use (see ``CampaignIndex``)
        self.catalogue = index.catalogue
        self.items = index.items
        self.category_codes = index.category_codes
        self.n_groups = index.n_groups
        self.categories = index.categories
        self.n_items = index.n_items
        self.item_rank = index.item_rank
        self.item_group = index.item_group
        self.item_in_stock = index.item_in_stock
        self.bestsellers = index.bestsellers
        self.popular_frame = index.popular_frame
        #: Purchases before ``now`` (the customers' facts), narrowed to what strategies read, with the item
        #: code ``_i`` (null for items missing from the catalogue) and the customer code ``_u``.
        coded = index.purchases
        last = coded["ts"].max()
        # (by default ``now`` follows the last purchase: no filter, no copy of 1.5 M rows)
        every = last is not None and last < now and coded["ts"].null_count() == 0
        self.purchases = coded if every else coded.filter(pl.col("ts") < now)
        self.rules = rules
        excluded = set(rules.exclude_categories if rules else ()) | set(exclude.categories if exclude else ())
        excluded_codes = self.category_codes.filter(pl.col("category").is_in(sorted(excluded)))
        self._excluded_groups = excluded_codes["_g"].to_numpy()
        # excluded items by code: candidates are matched on ``_i`` (bought-with rows get their item id late)
        excluded_items = pl.Series(list(exclude.items) if exclude else [], dtype=pl.String)
        self._excluded_items = self.items.filter(pl.col("item_id").is_in(excluded_items.implode()))["_i"] \
            .to_numpy()
        # per thread (batches may run in threads): the current batch's bought lines, bitmap and latest
        # purchase per customer × category
        self._local = threading.local()
        # (part, customer code per batch position) of every batch handed out, by the part's id
        self._batch_codes: dict[int, tuple[pl.DataFrame, np.ndarray]] = {}
        self._all_purchases = self.purchases is coded
        self._new_items: dict[int, pl.DataFrame] = {}
        self.folded_in = 0

    # ---------------------------------------------------------------- lookups
    def batches(self, customer_ids: Sequence[str],
                batch_size: int) -> Iterator[tuple[list[str], pl.DataFrame]]:
        """``(batch of customer ids, their purchases)`` in order, ``batch_size`` customers at a time.

        Purchases are those before ``now`` — ``ts, price`` plus the item's catalogue ``list_price`` — in
        no particular order (strategies never rely on row order), as integer codes for fast group-bys:
        ``_c`` (customer's position in the batch), ``_i`` (item), ``_g`` (category) and
        ``_k = _c * n_groups + _g`` (one key per customer × category); the item columns are null for
        items missing from the catalogue.  The purchases carry the index's customer code, so finding the
        audience's rows is an array look-up (no string hashing per run), and one partition serves every
        batch: no join or sort of the whole purchase table.
        """
        ids = list(customer_ids)
        if not ids:
            return
        n_batches = (len(ids) + batch_size - 1) // batch_size
        at = np.arange(len(ids), dtype=np.int32)
        b: np.ndarray | None = None  # batch number per line (several batches only)
        # the index's customer code of every position (null: no purchase)
        code = codes_of(pl.Series(ids, dtype=pl.String), self.index.customer_ids)
        if len(set(ids)) == len(ids):
            # batch and position in it of every indexed customer (-1: not in the audience), per customer,
            # then gathered per line: an array look-up instead of hashing 1.5 M ids (or dividing per line)
            n_known = self.index.customer_ids.len()
            found, known = code.is_not_null().to_numpy(), code.drop_nulls().to_numpy()
            line = self.purchases["_u"].fill_null(n_known).to_numpy()  # the last slot: no customer code
            where = np.full(n_known + 1, -1, dtype=np.int32)
            where[known] = (at % batch_size)[found]
            c = where[line]
            if n_batches > 1:
                where[known] = (at // batch_size)[found]
                b = where[line]
            mine = c >= 0
            if mine.all():  # the whole customer base: no copy
                rows = self.purchases
            else:
                rows = self.purchases.filter(pl.Series(mine))
                c, b = c[mine], (b[mine] if b is not None else None)
        else:  # a customer listed twice appears in every batch position it holds
            assign = pl.DataFrame({"_u": code, "_pos": at}).filter(pl.col("_u").is_not_null())
            rows = self.purchases.join(assign, on="_u")
            pos = rows["_pos"].to_numpy()
            rows, c, b = rows.drop("_pos"), pos % batch_size, pos // batch_size
        rows = rows.drop("_u").with_columns(pl.Series("_c", c, dtype=pl.Int32))
        rows = rows.with_columns((pl.col("_c").cast(pl.Int64) * self.n_groups + pl.col("_g")).alias("_k"))
        if n_batches > 1:
            parts = rows.with_columns(pl.Series("_b", b, dtype=pl.Int32)) \
                .partition_by("_b", as_dict=True, include_key=False)
        else:
            parts = {(0,): rows}
        codes = code.fill_null(-1).to_numpy()  # (kept per batch, for ``bought``)
        for k in range(n_batches):
            part = parts.get((k,), rows.clear())
            self._batch_codes[id(part)] = (part, codes[k * batch_size:(k + 1) * batch_size])
            yield ids[k * batch_size:(k + 1) * batch_size], part

    def pickable(self, cand: pl.DataFrame, hist: pl.DataFrame, *,
                 due: pl.DataFrame | None = None) -> pl.DataFrame:
        """Drop candidates the hard rules would drop anyway: out of stock, excluded categories or items,
        bought before (per ``exclude_bought_days``; not when some items are ``due`` again — the rules
        decide those)."""
        if cand.height == 0:
            return cand
        rules = self.rules
        items = cand["_i"].to_numpy()
        keep = np.ones(len(items), dtype=bool)
        if rules is None or rules.in_stock_only:
            keep &= self.item_in_stock[items]
        if len(self._excluded_groups):
            keep &= ~np.isin(self.item_group[items], self._excluded_groups)
        if len(self._excluded_items):
            keep &= ~np.isin(items, self._excluded_items)
        if not keep.all():
            cand = cand.filter(pl.Series(keep))
        days = rules.exclude_bought_days if rules is not None else None
        if days is not None and due is None and hist.height and cand.height:
            seen = self.bought(cand["_c"].to_numpy(), cand["_i"].to_numpy(), hist, days)
            cand = cand.filter(~pl.Series(seen))
        return cand

    def bought(self, c: np.ndarray, i: np.ndarray, hist: pl.DataFrame, days: int) -> np.ndarray:
        """Whether customer ``c[k]`` (position in the batch) bought item ``i[k]`` in the last ``days`` of
        ``hist`` (0 = ever).

        Why a bitmap: the question is asked of ~900k candidates per Complete Journey batch, against the
        batch's 1.5 M purchase lines.  A hash set of (customer, item) keys costs a build and a probe per
        question (~30–45 ms each); one bit per (batch customer, catalogue item) — 2,500 × 92k bits =
        28 MB — is built once per batch (~30 ms) and answers with a gather (~2–5 ms).  Larger
        batches × catalogues than ``MAX_BITMAP_BYTES`` use the hash set.
        """
        bits, width = self._bitmap(hist, days)
        c = np.asarray(c, dtype=np.int64)
        i = np.asarray(i, dtype=np.int64)
        if bits is None:
            key = pl.Series(c * self.n_items + i)
            return key.is_in(self._bought_keys(hist, days, i).implode()).to_numpy()
        inside = c < len(bits) // width  # customers past the batch's last buyer bought nothing
        out = np.zeros(len(c), dtype=bool)
        cc, ii = c[inside], i[inside]
        out[inside] = ((bits[cc * width + (ii >> 3)] >> (ii & 7).astype(np.uint8)) & 1).astype(bool)
        return out

    def _bitmap(self, hist: pl.DataFrame, days: int) -> tuple[np.ndarray | None, int]:
        """The batch's (customer, item) purchase bits, ``width`` bytes per customer; ``(None, 0)`` when
        the bitmap would exceed ``MAX_BITMAP_BYTES``."""
        cached = getattr(self._local, "bitmap", None)
        if cached is not None and cached[0] is hist and cached[1] == days:
            return cached[2], cached[3]
        width = (self.n_items + 7) // 8
        batch = self._batch_codes.get(id(hist))
        if days == 0 and self._all_purchases and batch is not None and batch[0] is hist:
            # every purchase counts: the index's distinct items per customer, gathered per position
            indptr, items = self.index.bought_items()
            at = np.flatnonzero(batch[1] >= 0)
            start = indptr[batch[1][at]]
            length = indptr[batch[1][at] + 1] - start
            c = np.repeat(at.astype(np.int64), length)
            i = items[np.arange(length.sum()) + np.repeat(start - (np.cumsum(length) - length), length)]
            distinct = True  # (customer, item) pairs from the index are distinct
        else:
            c, i = self._bought_lines(hist, days)
            distinct = False
        n_customers = int(c.max(initial=-1)) + 1
        bits: np.ndarray | None = None
        if n_customers * width <= MAX_BITMAP_BYTES:
            bit = c.astype(np.int64) * (width * 8) + i
            if not distinct:  # distinct bit numbers: then the bits of a byte add up to their OR
                bit = unique_sorted(bit)
            bits = np.zeros(n_customers * width, dtype=np.uint8)
            np.add.at(bits, bit >> 3, np.left_shift(1, bit & 7).astype(np.uint8))
        self._local.bitmap = (hist, days, bits, width)
        return bits, width

    def _bought_lines(self, hist: pl.DataFrame, days: int) -> tuple[np.ndarray, np.ndarray]:
        """``(_c, _i)`` of the catalogue-item lines of ``hist`` bought in the last ``days`` (0: ever)."""
        cached = getattr(self._local, "bought", None)
        if cached is None or cached[0] is not hist or cached[1] != days:
            i = hist["_i"].fill_null(-1).to_numpy().astype(np.int64)
            mine = i >= 0
            if days > 0:
                mine &= hist["ts"].to_numpy() >= np.datetime64(self.now - timedelta(days=days), "us")
            cached = (hist, days, hist["_c"].to_numpy()[mine], i[mine])
            self._local.bought = cached
        return cached[2], cached[3]

    def latest_by_key(self, hist: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(k, ts, last)`` for the batch's purchases: each line's customer × category key ``_k`` (-1 for
        items without a category) and time (µs), and per key the time of its latest purchase (``last``,
        indexed by key; the int64 minimum where a key has none).  ``last`` covers every key of every
        customer with a purchase in ``hist``, plus a last slot (always the minimum) that -1 reads.

        Why arrays: keys are dense (batch customers × categories, ~1 M), so "latest purchase per key"
        is one ``np.maximum.at`` over the lines (~7 ms on Complete Journey's 1.5 M) instead of a
        group-by or a window per question; built once per batch, shared by the strategies and the rules'
        history cut.
        """
        cached = getattr(self._local, "latest", None)
        if cached is None or cached[0] is not hist:
            k = hist["_k"].fill_null(-1).to_numpy()
            ts = hist["ts"].to_numpy().view(np.int64)
            size = (int(hist["_c"].max() or 0) + 1) * self.n_groups + 1
            last = np.full(size, np.iinfo(np.int64).min)
            np.maximum.at(last, k, ts)  # -1 lands in the last slot, which nothing reads
            last[-1] = np.iinfo(np.int64).min
            cached = (hist, k, ts, last)
            self._local.latest = cached
        return cached[1], cached[2], cached[3]

    def _bought_keys(self, hist: pl.DataFrame, days: int, items: np.ndarray) -> pl.Series:
        """``_c * n_items + _i`` of every (customer, item) bought in the last ``days`` (0 = ever), among
        ``items`` only: the look-up set is built from the purchases of the candidates' items, often a
        fraction of the history, instead of all of it."""
        c, i = self._bought_lines(hist, days)
        wanted = np.zeros(self.n_items, dtype=bool)
        wanted[items] = True
        mine = wanted[i]
        return pl.Series(c[mine].astype(np.int64) * self.n_items + i[mine])

    def with_source_ids(self, cand: pl.DataFrame) -> pl.DataFrame:
        """Candidates with ``source_item_id``, the id of the purchase behind each (from ``_src``)."""
        return cand.with_columns(pl.lit(self.items["item_id"]).gather(pl.col("_src")).alias("source_item_id"))

    def codes_of_pairs(self, pairs: pl.DataFrame, customer_ids: Sequence[str]) -> pl.DataFrame:
        """``(customer_id, item_id)`` pairs as ``(_c, _i)`` codes of this batch (pairs outside it dropped)."""
        return (pairs.join(_positions(customer_ids), on="customer_id")
                .join(self.items.select("item_id", "_i"), on="item_id").select("_c", "_i"))

    def edges(self, top: int) -> pl.DataFrame:
        """Complement graph edges ``(source, target, lift, source_g, target_g)`` (``CampaignIndex.edges``)."""
        return self.index.edges(top)

    def neighbours(self) -> pl.DataFrame:
        """Co-purchase neighbours ``_i, nb_i, nb_score`` (``CampaignIndex.neighbours``)."""
        return self.index.neighbours()

    def pickable_neighbours(self) -> pl.DataFrame:
        """``neighbours()`` whose neighbour passes this run's item-level hard rules (stock, excluded
        categories and items) and has a category, with its category code: ``_i, nb_i, nb_score, target_g``.

        Filtering the neighbour table once per distinct set of item rules (kept in the index) makes the
        bought-with join produce only rows that can survive, instead of filtering its output every batch.
        """
        stock = self.rules is None or self.rules.in_stock_only
        key = ("pickable_neighbours", stock, tuple(self._excluded_groups.tolist()),
               tuple(self._excluded_items.tolist()))
        return self.index.memo(key, lambda: self._pickable_neighbours(stock))

    def _pickable_neighbours(self, stock: bool) -> pl.DataFrame:
        nb = self.neighbours()
        items = nb["nb_i"].to_numpy()
        group = self.item_group[items]
        keep = group >= 0
        if stock:
            keep &= self.item_in_stock[items]
        if len(self._excluded_groups):
            keep &= ~np.isin(group, self._excluded_groups)
        if len(self._excluded_items):
            keep &= ~np.isin(items, self._excluded_items)
        return nb.with_columns(pl.Series("target_g", group, dtype=pl.Int32)).filter(pl.Series(keep))

    def new_items(self, within_days: int) -> pl.DataFrame:
        """Items first sold at most ``within_days`` before ``now``: ``(_i, _g, new_norm)``.

        ``new_norm`` is the item's sales since launch relative to the best new item of its category.
        """
        if within_days not in self._new_items:
            start = self.now - timedelta(days=within_days)
            first = self.purchases.filter(pl.col("_i").is_not_null()).group_by("_i").agg(
                pl.col("ts").min().alias("first_ts"), pl.len().alias("sales"))
            self._new_items[within_days] = (
                first.filter(pl.col("first_ts") >= start)
                .join(self.items.filter(pl.col("in_stock") & pl.col("_g").is_not_null())
                      .select("item_id", "_i", "_g"), on="_i")
                .with_columns((pl.col("sales") / pl.col("sales").max().over("_g")).cast(pl.Float64)
                              .alias("new_norm"))
                .select("item_id", "_i", "_g", "new_norm")
            )
        return self._new_items[within_days]

    def refresh(self) -> int:
        """Fold purchases newer than the bundle (and before ``now``) into it (``CampaignIndex.refresh``).

        Returns the number of purchases this run folded in (0 when an earlier run already did).
        """
        folded = self.index.refresh(self.now)
        self.folded_in += folded
        return folded

# ------------------------------------------------------------------------- strategies
#: Strategies whose candidates already passed ``PickContext.pickable`` (the run need not check again).
CHECKED_STRATEGIES: frozenset[str] = frozenset({"complements"})
#: Strategies whose batches may run in threads at once: they read the bundle's item tables and the batch's
#: purchases only.  ``replenishment`` and ``winback`` ask the bundle's models per customer (and fold
#: events into them first), which is not promised to be thread-safe: they run one batch at a time.
PARALLEL_STRATEGIES: frozenset[str] = frozenset({"complements", "upsell", "new_in_category", "welcome"})

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
    """Items due again: days since the last purchase within ``due_ratio`` × the expected interval."""
    s = campaign.strategy
    ba = ctx.hybrid.generators.get("buy_again")
    if ba is None:
        return _empty(), None
    ctx.refresh()
    if s.categories:
        repl = list(s.categories)
    else:
        table = ba.replenishable_categories()  # type: ignore[attr-defined]
        repl = table.filter(pl.col("replenishable"))["category"].to_list()
    if not repl:
        return _empty(), None
    rec = ba.recommend_with_sources(  # type: ignore[attr-defined]
        list(ids), 50, at=ctx.now, on_unknown="empty")
    lo, hi = s.due_ratio
    cand = (
        rec.join(ctx.items.select("item_id", "_i", "category"), on="item_id")
        .filter(pl.col("category").is_in(repl))
        .with_columns(((pl.lit(ctx.now, pl.Datetime("us")) - pl.col("last_bought_ts")).dt.total_seconds()
                       / _SECONDS_PER_DAY / pl.col("expected_interval_days")).alias("due_ratio"))
        .filter((pl.col("due_ratio") >= lo) & (pl.col("due_ratio") <= hi))
        .with_columns(pl.col("_i").alias("_src"), pl.col("last_bought_ts").alias("source_ts"))
        .join(_positions(ids), on="customer_id")
    )
    due = cand.select("customer_id", "item_id", pl.lit(True).alias("due"))
    return _as_candidates(cand, "replenish_due"), due


def _winback(ctx: PickContext, campaign: Campaign, ids: Sequence[str], hist: pl.DataFrame) -> _Result:
    """The customer's personal hybrid ranking, restricted to items they never bought."""
    ctx.refresh()
    known = [c for c in ids if c in ctx.hybrid.history]
    if not known:
        return _empty(), None
    ranked = ctx.hybrid.rank(known, ctx.now)
    codes = ctx.items.select("item_id", "_i")
    cand = (ranked.join(codes, on="item_id").join(_positions(ids), on="customer_id")
            .join(hist.select("_c", "_i").unique(), on=["_c", "_i"], how="anti")
            .join(codes.rename({"item_id": "source_item_id", "_i": "_src"}), on="source_item_id", how="left"))
    return _as_candidates(cand, pl.col("reason_type")), None


def _positions(ids: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": list(ids), "_c": np.arange(len(ids), dtype=np.int32)},
                        schema={"customer_id": pl.String, "_c": pl.Int32})


STRATEGIES: dict[str, StrategyFn] = {
    "complements": _complements,
    "replenishment": _replenishment,
    "upsell": _upsell,
    "new_in_category": _new_in_category,
    "welcome": _welcome,
    "winback": _winback,
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

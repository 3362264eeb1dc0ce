"""``PickContext``: what every pick strategy of one campaign run reads, and the look-ups they share.

One per run: the shared ``CampaignIndex`` (codes and catalogue tables of the bundle and data) plus
what depends on the run — purchases before ``now``, the placement's hard rules and the campaign's
exclusions — and per batch (per thread) the purchase bitmap and the latest purchase per customer ×
category.  The strategies themselves are in ``_strategies``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from recsys._arrays import unique_sorted
from recsys.bundle import Bundle
from recsys.campaigns._config import Exclusions
from recsys.campaigns._index import CampaignIndex, shared_index
from recsys.campaigns._util import codes_of, max_int
from recsys.dataset import Dataset
from recsys.rules import PlacementRules

__all__ = ["CANDIDATE_SCHEMA", "MAX_BITMAP_BYTES", "PickContext", "positions"]

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
#: Largest per-batch purchase bitmap (batch customers × catalogue items / 8); beyond it, hash sets.
MAX_BITMAP_BYTES = 256 * 1024 * 1024


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
        every = isinstance(last, datetime) and last < now and coded["ts"].null_count() == 0
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
        #: The run's abandoned carts (``_abandoned.carts_for``; ``None``: not an abandoned-cart run).
        self.carts: pl.DataFrame | None = None

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
            size = (max_int(hist["_c"]) + 1) * self.n_groups + 1
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
        return (pairs.join(positions(customer_ids), on="customer_id")
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


def positions(ids: Sequence[str]) -> pl.DataFrame:
    """``customer_id, _c``: each customer's position in the batch ``ids``."""
    return pl.DataFrame({"customer_id": list(ids), "_c": np.arange(len(ids), dtype=np.int32)},
                        schema={"customer_id": pl.String, "_c": pl.Int32})

"""``CampaignIndex``: what every campaign run over one bundle and one data set shares, prepared once.

Why: a campaign run spends most of its fixed cost turning strings into integers and re-deriving
catalogue tables — item and customer codes for 1.5 M purchase lines, median prices paid, category
codes, bestsellers, the co-purchase neighbour table, the rules' catalogue index.  None of that depends
on the campaign, its audience, ``now`` or the placement: only on the bundle and the data.  The weekly
job runs several campaigns (and a scheduler may run several shards) against the same loaded bundle
and data, so the index is built once and handed to every run (``plan_campaign(..., index=...)``); a
run without one builds its own, and the lists are the same either way (tested).

What is *not* here: anything that depends on ``now`` (purchases before it, "new" items), on the
placement's rules or on the campaign's exclusions — that is ``PickContext``, one per run.

Folding purchases newer than the bundle into it (``refresh``) lives here too: it changes the bundle's
per-customer state once per (bundle, data), and the item-level tables this index reads (popularity
scores, co-purchase neighbours, the complement graph) stay as trained when a model folds events in,
so the index stays valid afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import TypeVar, cast

import numpy as np
import polars as pl

from recsys._arrays import unique_sorted
from recsys.bundle import Bundle
from recsys.campaigns._util import code_expr, codes_of, paid_median
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError
from recsys.models.base import PAD_ID
from recsys.rules import PlacementRules, RuleSet

__all__ = ["CampaignIndex", "shared_index"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_MISSING = object()

#: Co-purchase neighbours considered per purchased item (best scores first).
NEIGHBOURS_PER_ITEM = 10


class CampaignIndex:
    """Integer codes and catalogue tables for campaign runs over one ``(bundle, data)`` pair.

    Parameters
    ----------
    bundle
        The loaded model bundle.
    data
        The data set the runs read (its purchases are the customers' facts, its items the catalogue).

    Attributes
    ----------
    purchases : pl.DataFrame
        Every purchase line as codes: ``ts, price``, ``_i`` (item code: position in the catalogue's
        distinct ids, null for items missing from it), ``_u`` (customer code: position in
        ``customer_ids``), the item's catalogue ``list_price`` and category code ``_g``.
    customer_ids : pl.Series
        The distinct customer ids of the purchases, in first-appearance order.
    catalogue : pl.DataFrame
        ``data.items`` with items lacking a list price priced at the median unit price paid for them.
    items : pl.DataFrame
        One row per catalogue item: ``_i, item_id, category, price, in_stock, pop, _g``.
    bestsellers, popular_frame, category_codes, item_rank, item_group, item_in_stock
        See the attributes' comments; all indexed by item code ``_i`` where they are arrays.

    Examples
    --------
    >>> index = CampaignIndex(bundle, data)  # doctest: +SKIP
    >>> for campaign in campaigns:  # doctest: +SKIP
    ...     run_campaign(campaign, bundle, data, placements=rules, store=store, index=index, out=...)
    """

    def __init__(self, bundle: Bundle, data: Dataset) -> None:
        t0 = time.perf_counter()
        self.bundle = bundle
        self.data = data
        hybrid = bundle.hybrid
        # Item codes ``_i``: positions among the catalogue's distinct ids (first occurrence order);
        # customer codes ``_u``: positions among the purchases' distinct customers.  Both string columns
        # are hashed once, in one ``select`` so polars casts them on both cores at the same time.
        item_ids = data.items["item_id"].cast(pl.String).drop_nulls().unique(maintain_order=True)
        purchases = data.purchases
        self.customer_ids = purchases["customer_id"].cast(pl.String).drop_nulls().unique(maintain_order=True)
        # (the string ids are not kept: every later step works on the codes, and ids are attached to the
        # few rows that reach the rules)
        self.purchases = purchases.select(
            pl.col("ts").cast(pl.Datetime("us")), pl.col("price").cast(pl.Float64),
            code_expr("item_id", item_ids).alias("_i"),
            code_expr("customer_id", self.customer_ids).alias("_u"),
        )
        self.catalogue = _with_paid_prices(data.items, self.purchases, item_ids)
        pop = hybrid.popularity
        pop_frame = pl.DataFrame({
            "item_id": pl.Series(pop.item_ids_.ids.tolist(), dtype=pl.String),
            "pop": pl.Series(np.asarray(pop.scores_, dtype=np.float64)),
        })
        items = self.catalogue.select(
            "item_id", "category", pl.col("price").cast(pl.Float64),
            pl.col("in_stock").fill_null(True) if "in_stock" in self.catalogue.columns
            else pl.lit(True).alias("in_stock"),
        ).filter(pl.col("item_id").is_not_null()).unique("item_id", keep="first", maintain_order=True)
        cats = sorted(set(items["category"].drop_nulls().to_list()))
        #: Category code ``_g`` of each category name; customer × category keys are ``_c * n_groups + _g``.
        self.category_codes = pl.DataFrame({"category": cats, "_g": np.arange(len(cats), dtype=np.int32)},
                                           schema={"category": pl.String, "_g": pl.Int32})
        self.n_groups = max(len(cats), 1)
        self.categories: set[str] = set(cats)
        #: The catalogue with popularity, item code ``_i`` (row number) and category code ``_g``.
        self.items = (
            items.join(pop_frame, on="item_id", how="left", maintain_order="left")
            .with_columns(pl.col("pop").fill_null(0.0))
            .with_row_index("_i").with_columns(pl.col("_i").cast(pl.Int32))
            .join(self.category_codes, on="category", how="left", maintain_order="left")
        )
        self.n_items = self.items.height
        # every line's catalogue price and category code, looked up once (a run only adds batch positions)
        # (one contiguous chunk per column: loaders hand over many, and every later filter, gather and
        # column swap on a chunked 1.5 M-row frame pays for re-aligning them)
        self.purchases = self.purchases.with_columns(
            pl.lit(self.items["price"]).gather(pl.col("_i")).alias("list_price"),
            pl.lit(self.items["_g"]).gather(pl.col("_i")).alias("_g"),
        ).rechunk()
        #: Per item code: position of the item id in sorted order, an integer stand-in for "smallest id".
        self.item_rank = self.items["item_id"].rank("ordinal").cast(pl.Int32) - 1
        #: Per item code: category code (-1 = none) and stock flag, for array look-ups.
        self.item_group = self.items["_g"].fill_null(-1).to_numpy().astype(np.int64)
        self.item_in_stock = self.items["in_stock"].to_numpy().astype(bool)
        #: Bestsellers per category (in stock, sold at least once): rank 1 = best, pop_norm in (0, 1].
        self.bestsellers = (
            self.items.filter(pl.col("_g").is_not_null() & (pl.col("pop") > 0) & pl.col("in_stock"))
            .sort(["_g", "pop", "item_id"], descending=[False, True, False])
            .with_columns(
                pl.int_range(1, pl.len() + 1).over("_g").alias("cat_rank"),
                (pl.col("pop") / pl.col("pop").max().over("_g")).alias("pop_norm"),
            )
            .select("_g", "category", "item_id", "_i", "price", "cat_rank", "pop_norm")
        )
        ids, scores = pop.popular(500)
        keep = ids != PAD_ID
        #: Global popularity ranking for the rules' fallback chain (as the service uses).
        self.popular_frame = pl.DataFrame({"item_id": ids[keep].astype(str),
                                           "score": scores[keep].astype(np.float64)})
        self._rulesets: dict[str, RuleSet] = {}
        self._memo: dict[Hashable, object] = {}
        self._lock = threading.Lock()
        self.folded_in = 0
        self.seconds = time.perf_counter() - t0
        log.debug("campaign index: %d purchase lines, %d items, %d customers in %.2fs",
                  self.purchases.height, self.n_items, self.customer_ids.len(), self.seconds)

    def __repr__(self) -> str:
        return (f"CampaignIndex(purchases={self.purchases.height}, items={self.n_items}, "
                f"customers={self.customer_ids.len()})")

    def matches(self, bundle: Bundle, data: Dataset) -> bool:
        """Whether this index was built for exactly this bundle and data set (the same objects)."""
        return bundle is self.bundle and data is self.data

    # ---------------------------------------------------------------- shared tables
    def ruleset(self, rules: PlacementRules) -> RuleSet:
        """The prepared ``RuleSet`` of ``rules`` over this catalogue (one per distinct rules, kept)."""
        key = rules.model_dump_json()
        with self._lock:
            found = self._rulesets.get(key)
            if found is None:
                if self._rulesets:
                    index = next(iter(self._rulesets.values()))._cat  # share the catalogue look-ups
                    found = RuleSet(rules, self.catalogue, fallback=self.popular_frame, _index=index)
                else:
                    found = RuleSet(rules, self.catalogue, fallback=self.popular_frame)
                    # runs hand the rules item codes (``RuleSet.apply_codes``): both number the
                    # catalogue's distinct ids in order of first appearance — checked once, not assumed
                    if found._cat.item_ids != self.items["item_id"].to_list():
                        raise RuntimeError("CampaignIndex and RuleSet number the catalogue differently")
                self._rulesets[key] = found
        return found

    def edges(self, top: int) -> pl.DataFrame:
        """Complement graph edges ``(source, target, lift, source_g, target_g)``, best ``top`` targets per
        source (edges between categories missing from the catalogue are dropped)."""
        return self.memo(("edges", top), lambda: self._edges(top))

    def _edges(self, top: int) -> pl.DataFrame:
        cc = self.bundle.hybrid.category_complements
        if cc is None:
            frame = pl.DataFrame(schema={"source": pl.String, "target": pl.String, "lift": pl.Float64})
        else:
            graph = cc.graph_frame()
            frame = graph.filter(pl.col("rank") <= top).select(
                "source", "target", pl.col("lift").cast(pl.Float64))
        codes = self.category_codes
        return (frame.join(codes.rename({"category": "source", "_g": "source_g"}), on="source")
                .join(codes.rename({"category": "target", "_g": "target_g"}), on="target"))

    def neighbours(self) -> pl.DataFrame:
        """Co-purchase neighbours by item code: ``_i, nb_i, nb_score`` — the best ``NEIGHBOURS_PER_ITEM``
        of each item (catalogue items only)."""
        return self.memo("neighbours", self._neighbours)

    def _neighbours(self) -> pl.DataFrame:
        cp = self.bundle.hybrid.copurchase
        if cp is None:
            return pl.DataFrame(schema={"_i": pl.Int32, "nb_i": pl.Int32, "nb_score": pl.Float64})
        indptr = np.asarray(cp.nb_indptr_, dtype=np.int64)
        cp_ids = pl.Series(cp.item_ids_.ids.tolist(), dtype=pl.String)
        to_ctx = codes_of(cp_ids, self.items["item_id"]).fill_null(-1).to_numpy()
        src = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        rank = np.arange(len(src)) - indptr[src]  # neighbours are stored best first
        keep = rank < NEIGHBOURS_PER_ITEM
        a = to_ctx[src[keep]]
        b = to_ctx[np.asarray(cp.nb_indices_)[keep]]
        score = np.asarray(cp.nb_score_, dtype=np.float64)[keep]
        ok = (a >= 0) & (b >= 0)
        return pl.DataFrame({"_i": a[ok].astype(np.int32), "nb_i": b[ok].astype(np.int32),
                             "nb_score": score[ok]})

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()``, computed once per ``key`` for this index: tables a run derives from the index and
        its own item rules (the same for every run with the same rules)."""
        found = self._memo.get(key, _MISSING)
        if found is _MISSING:
            found = build()
            with self._lock:
                while len(self._memo) >= 32:  # a handful of placements and exclusion sets in practice
                    self._memo.pop(next(iter(self._memo)))
                self._memo[key] = found
        return cast(T, found)

    def bought_items(self) -> tuple[np.ndarray, np.ndarray]:
        """Every customer's distinct purchased catalogue items, as CSR over customer codes:
        ``(indptr, items)``, customer ``u``'s items sorted in ``items[indptr[u]:indptr[u + 1]]``.

        Why: "bought before?" is asked of every candidate of every run; a run's per-batch bitmap is
        filled from these rows (one gather) instead of sorting and deduplicating 1.5 M purchase lines
        per batch.  Built once per index (~30 ms on Complete Journey).
        """
        return self.memo("bought_items", self._bought_items)

    def _bought_items(self) -> tuple[np.ndarray, np.ndarray]:
        lines = self.purchases.filter(pl.col("_i").is_not_null() & pl.col("_u").is_not_null())
        n = max(self.n_items, 1)
        key = unique_sorted(lines["_u"].to_numpy().astype(np.int64) * n + lines["_i"].to_numpy())
        customer = key // n
        indptr = np.searchsorted(customer, np.arange(self.customer_ids.len() + 1))
        return indptr.astype(np.int64), key - customer * n

    # ---------------------------------------------------------------- bundle state
    def refresh(self, now: datetime) -> int:
        """Fold purchases newer than the bundle (and before ``now``) into its history and generators.

        Idempotent: rows at or before the bundle's latest known purchase are never folded twice, so a
        second run (or a later ``now``) folds only what is still missing.  Returns the number of
        purchases folded in by this call.
        """
        hybrid = self.bundle.hybrid
        with self._lock:
            mark = max(hybrid.reference_time, hybrid.history.last_ts or hybrid.reference_time)
            newer = self.data.purchases.filter((pl.col("ts") > mark) & (pl.col("ts") < now))
            if newer.height == 0:
                return 0
            t0 = time.perf_counter()
            known = newer.filter(pl.col("item_id").is_in(self.items["item_id"].implode()))
            hybrid.history.append(newer)
            for gen in hybrid.generators.values():
                try:
                    gen.partial_fit(known)
                except NotImplementedError:
                    continue
            self.folded_in += newer.height
        log.info("folded %d purchases newer than the bundle (%s) into it in %.2fs",
                 newer.height, mark, time.perf_counter() - t0)
        return newer.height


def _with_paid_prices(items: pl.DataFrame, purchases: pl.DataFrame, item_ids: pl.Series) -> pl.DataFrame:
    """The catalogue, items without a list price priced at the median unit price paid for them.

    Grocery exports (Complete Journey) carry prices on purchase lines only; upsell needs a price per
    item, and so does the email placement's upsell band.  ``purchases`` carries the item code ``_i``
    (position in ``item_ids``, the catalogue's distinct ids), so the medians group on integers.
    """
    if "price" not in items.columns or items["price"].null_count() == 0:
        return items
    median, known = paid_median(purchases["_i"], purchases["price"], item_ids.len())
    if item_ids.len() == items.height:  # distinct, non-null ids (a validated catalogue): row = code
        row = pl.int_range(0, items.height, dtype=pl.Int32, eager=True)
    else:
        row = codes_of(items["item_id"], item_ids)
    at = row.fill_null(0).to_numpy().astype(np.int64)
    ok = pl.Series(row.is_not_null().to_numpy() & known[at])
    paid = pl.when(ok).then(pl.Series(median[at]))
    return items.with_columns(pl.coalesce(pl.col("price"), paid).alias("price"))


def shared_index(index: CampaignIndex | None, bundle: Bundle, data: Dataset) -> CampaignIndex:
    """``index`` when it was built for this bundle and data, a new one when ``None``; a mismatch is an
    error (an index of other data would silently give other customers' purchases)."""
    if index is None:
        return CampaignIndex(bundle, data)
    if not index.matches(bundle, data):
        raise ConfigError("The 'index' parameter was built for another bundle or data set: build it with "
                         "CampaignIndex(bundle, data) for the objects passed to this run.")
    return index


"""Catalogue lookups prepared once per bundle, and the per-``now`` state of dated rules.

Why precompute: a web request must not re-derive category codes, prices, stock flags or the
popularity order of the whole catalogue.  ``CatalogueIndex`` turns the catalogue and the popularity
ranking into plain arrays indexed by an internal item number; ``DatedState`` caches, per set of
*active* boost/pin/block entries, the masks and fallback pools they imply, so validity windows cost a
handful of comparisons per request.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys.exceptions import SchemaError
from recsys.rules._config import PlacementRules
from recsys.rules._select import Pools

__all__ = ["CatalogueIndex", "DatedState", "dated_state", "unknown_names"]


@dataclass(frozen=True)
class CatalogueIndex:
    """Arrays over catalogue items (first occurrence of each ``item_id``), by internal index.

    ``category`` is a code into ``categories`` (-1 = none), ``replenishable`` is 1/0/-1 (true/false/
    unknown), ``id_rank`` is the position of the id in sorted order (the deterministic tie-break),
    ``pop_order`` lists every item by fallback popularity (descending, ties by id) followed by the
    items the popularity ranking does not cover (by id), and ``pop_score`` is the popularity score
    (NaN where there is none).
    """

    item_ids: list[str]
    index_frame: pl.DataFrame
    categories: list[str]
    category_index: dict[str, int]
    category: np.ndarray
    price: np.ndarray
    in_stock: np.ndarray
    replenishable: np.ndarray
    id_rank: np.ndarray
    pop_order: np.ndarray
    pop_score: np.ndarray

    @property
    def n_items(self) -> int:
        """Number of catalogue items (distinct ``item_id``)."""
        return len(self.item_ids)

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """``item_id → internal index``, built on first use (~20 ms for 92k items): a web request maps a
        few ids with it, a batch job maps through ``index_frame`` and may never need it."""
        return {it: i for i, it in enumerate(self.item_ids)}

    @classmethod
    def build(cls, catalogue: pl.DataFrame, fallback: pl.DataFrame | None) -> CatalogueIndex:
        """Index ``catalogue`` (first row per ``item_id``) with ``fallback``'s popularity scores
        (``item_id, score``) for the fallback order; absent optional columns get neutral defaults."""
        if "item_id" not in catalogue.columns:
            raise SchemaError("catalogue: missing required column 'item_id'",
                              source="catalogue", column="item_id")
        cat = (catalogue.filter(pl.col("item_id").is_not_null())
               .unique("item_id", keep="first", maintain_order=True))
        n = cat.height
        item_ids: list[str] = cat["item_id"].cast(pl.String).to_list()
        index_frame = pl.DataFrame(
            {"item_id": item_ids, "_idx": np.arange(n, dtype=np.int64)},
            schema={"item_id": pl.String, "_idx": pl.Int64},
        )
        if "category" in cat.columns:
            cat_col = cat["category"].cast(pl.String)
            categories = sorted(cat_col.drop_nulls().unique().to_list())
        else:
            cat_col = pl.Series("category", [None] * n, dtype=pl.String)
            categories = []
        category_index = {c: i for i, c in enumerate(categories)}
        # (an Enum cast: codes are positions in the sorted category list; no category → -1)
        codes = (cat_col.cast(pl.Enum(categories)).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
                 if categories else np.full(n, -1, dtype=np.int64))
        price = (cat["price"].cast(pl.Float64).fill_null(np.nan).to_numpy() if "price" in cat.columns
                 else np.full(n, np.nan))
        in_stock = (cat["in_stock"].cast(pl.Boolean).fill_null(True).to_numpy() if "in_stock" in cat.columns
                    else np.ones(n, dtype=bool))
        if "replenishable" in cat.columns:
            rep = cat["replenishable"].cast(pl.Boolean)
            replen = np.where(rep.is_null().to_numpy(), -1, rep.fill_null(False).to_numpy().astype(np.int8))
        else:
            replen = np.full(n, -1)
        id_rank = np.empty(n, dtype=np.int64)
        # polars sorts strings by UTF-8 bytes, i.e. by code point as Python does, ~6× faster than numpy's
        # object argsort; the ids are distinct, so the order is the same
        id_rank[cat["item_id"].cast(pl.String).arg_sort().to_numpy()] = np.arange(n)

        pop_score = np.full(n, np.nan)
        if fallback is not None and fallback.height and {"item_id", "score"} <= set(fallback.columns):
            fb = (
                fallback.select(pl.col("item_id").cast(pl.String), pl.col("score").cast(pl.Float64))
                .join(index_frame, on="item_id", how="inner")
                .filter(pl.col("score").is_not_null() & pl.col("score").is_not_nan())
                .group_by("_idx")
                .agg(pl.col("score").max())
            )
            pop_score[fb["_idx"].to_numpy()] = fb["score"].to_numpy()
        has = ~np.isnan(pop_score)
        ranked_items = np.flatnonzero(has)
        ranked_items = ranked_items[np.lexsort((id_rank[ranked_items], -pop_score[ranked_items]))]
        tail = np.flatnonzero(~has)
        tail = tail[np.argsort(id_rank[tail], kind="stable")]
        pop_order = np.concatenate([ranked_items, tail]).astype(np.int64)
        return cls(item_ids, index_frame, categories, category_index, codes, price,
                   in_stock.astype(bool), replen.astype(np.int8), id_rank, pop_order, pop_score)

    def items_of(self, ids: list[str]) -> np.ndarray:
        """Indices of known ids, in order (unknown ones are dropped)."""
        if not ids:
            return np.zeros(0, dtype=np.int64)
        if "index" in self.__dict__:  # the dictionary exists: use it
            return np.fromiter((self.index[i] for i in ids if i in self.index), dtype=np.int64)
        found = (pl.DataFrame({"item_id": list(ids)}, schema={"item_id": pl.String})
                 .join(self.index_frame, on="item_id", how="inner", maintain_order="left"))
        return found["_idx"].to_numpy().astype(np.int64)

    def categories_of(self, names: list[str]) -> np.ndarray:
        """Codes of the named categories; names not in the catalogue are skipped."""
        index = self.category_index
        return np.fromiter((index[c] for c in names if c in index), dtype=np.int64)


@dataclass(frozen=True)
class DatedState:
    """What the entries valid at some ``now`` imply: eligibility, boost factors, pins and pools."""

    ok: np.ndarray  # static hard rules and active blocks
    factor: np.ndarray | None  # boost multiplier per item, None when no boost is active
    pins: list[tuple[int, int]]  # (position, item), priority order
    pools: Pools


def dated_state(rules: PlacementRules, cat: CatalogueIndex, static_ok: np.ndarray,
                active: tuple[tuple[bool, ...], tuple[bool, ...], tuple[bool, ...]]) -> DatedState:
    """Build the state for one combination of active (block, boost, pin) entries."""
    blocks, boosts, pins = active
    ok = static_ok.copy()
    for block, on in zip(rules.block, blocks):
        if on:
            ok &= ~_matches(block.item_ids, block.categories, cat)
    factor: np.ndarray | None = None
    for boost, on in zip(rules.boost, boosts):
        if on:
            if factor is None:
                factor = np.ones(cat.n_items)
            factor[_matches(boost.item_ids, boost.categories, cat)] *= boost.factor
    pin_list: list[tuple[int, int, int]] = []
    for order, (pin, on) in enumerate(zip(rules.pin, pins)):
        found = cat.items_of([pin.item_id]) if on else np.zeros(0, dtype=np.int64)
        if len(found) and ok[found[0]]:
            pin_list.append((pin.position, order, int(found[0])))
    pin_list.sort()
    eligible = cat.pop_order[ok[cat.pop_order]]
    items = eligible.tolist()
    codes = cat.category[eligible]
    by_category: dict[int, list[int]] = {}
    by_price: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if len(eligible):
        positions = np.arange(len(eligible))
        srt = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[srt])) + 1
        for chunk in np.split(positions[srt], bounds):
            by_category[int(codes[chunk[0]])] = chunk.tolist()
        prices = cat.price[eligible]
        priced = positions[~np.isnan(prices)]
        srt = priced[np.lexsort((priced, prices[priced], codes[priced]))]
        if len(srt):
            bounds = np.flatnonzero(np.diff(codes[srt])) + 1
            for chunk in np.split(srt, bounds):
                by_price[int(codes[chunk[0]])] = (prices[chunk], chunk)
    return DatedState(ok, factor, [(p, i) for p, _, i in pin_list], Pools(items, by_category, by_price))


def _matches(item_ids: list[str], categories: list[str], cat: CatalogueIndex) -> np.ndarray:
    mask = np.zeros(cat.n_items, dtype=bool)
    mask[cat.items_of(item_ids)] = True
    codes = cat.categories_of(categories)
    if len(codes):
        mask |= np.isin(cat.category, codes)
    return mask


def unknown_names(rules: PlacementRules, cat: CatalogueIndex) -> dict[str, list[str]]:
    """Category names and item ids the rules mention but the catalogue lacks (likely typos)."""
    categories = set(rules.include_categories) | set(rules.exclude_categories)
    items: set[str] = {p.item_id for p in rules.pin}
    for entry in (*rules.boost, *rules.block):
        categories |= set(entry.categories)
        items |= set(entry.item_ids)
    found = {
        "categories": sorted(c for c in categories if c not in cat.category_index),
        "item_ids": sorted(set(items) - {cat.item_ids[i] for i in cat.items_of(sorted(items))}),
    }
    return {k: v for k, v in found.items() if v}

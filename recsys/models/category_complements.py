"""The directional category-complement graph: "bought trousers → soon buys a belt".

Why directional and sequential: the cross-sell that pays is the *next* purchase a purchase
implies.  Belts follow trousers; trousers do not follow belts.  Symmetric co-occurrence (or
customer-level "people who buy A also buy B") cannot tell the two apart, and confounds style (formal
shoppers buy both) with cause.  So the graph counts, for every ordered category pair ``A → B``, how
often ``B`` is bought within ``window_days`` *after* an ``A`` purchase, against a date-matched base
rate and the reverse-time rate (``recsys.models._complement_graph``, which also says how it stays
fast).

Merchandisers can correct the learned graph with an override YAML (see
``configs/complements_overrides.yaml`` and ``recsys.models._complement_overrides``): ``pin`` (always
first), ``add`` (with a given lift) and ``remove`` per source category; overrides always win.
``CategoryComplements.export`` writes the graph for them to review.

Layout: this module holds the model (fit, the graph as frames, recommend with sources, fold-in,
persistence); the counting, the overrides and the export live in the ``_complement_*`` modules.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.dataset import Dataset
from recsys.exceptions import ModelFitError, UnknownIdError
from recsys.idmap import IdMap
from recsys.models._complement_export import EXPORT_SUFFIXES, write_graph
from recsys.models._complement_graph import Edges, SequenceCounts, learn_edges, sequence_counts
from recsys.models._complement_overrides import CategoryOverride, apply_overrides, load_overrides
from recsys.models._overlay import OverlayCSR, RowTable
from recsys.models._util import (
    ITEM_HALF_LIFE_DAYS,
    binary_matrix,
    bought_keys,
    csr_of,
    decayed_item_counts,
    encode,
    expand_ranges,
    group_candidates,
    group_index,
    csr_from_coo,
    newest,
    sorted_ids,
    pack,
    purchases_only,
    rank_within,
    ranked_group_items,
    resolve_rows,
    to_us,
    top_per_position,
)
from recsys.models.base import Explained, OnUnknown, Recommender, check_param

# (CategoryOverride, load_overrides, sequence_counts and SequenceCounts are re-exported from the modules
# they moved to: importers of this module keep working)
__all__ = ["CategoryComplements", "CategoryOverride", "load_overrides", "sequence_counts", "SequenceCounts"]

log = logging.getLogger(__name__)

_US_PER_DAY = 86_400_000_000
_ORIGINS = ("learned", "override")


# ---------------------------------------------------------------------------------- the model
class CategoryComplements(Recommender):
    """Directional category complements learned from purchase sequences, plus merchandiser overrides.

    Definitions (per ordered pair ``A → B``, ``A ≠ B``; purchases reduced to customer-days):

    * a *trigger* is a day on which a customer bought ``A`` and whose ``window_days`` before and after
      both lie inside the training period;
    * a *hit* is a trigger followed by a ``B`` purchase within ``window_days`` — on a strictly later
      day, or also on the same day with ``same_order=True`` (day granularity: "same order" means
      same day);
    * ``support`` = number of distinct **customers** with at least one hit (so one heavy shopper
      cannot make a pair); pairs below ``min_support`` are not learned;
    * ``confidence`` = hits / triggers = P(B within window | A);
    * ``base_rate`` = max(date-matched P(B within window after any purchase that week),
      shrunk P(B within window *before* A));
    * ``lift`` = ((hits + shrinkage·base) / (triggers + shrinkage)) / base — 1 for small counts.

    Learned edges need ``lift ≥ min_lift`` (and > 1) and ``support ≥ min_support``; the best
    ``max_per_category`` per source are kept, then ``overrides`` are applied (they always win).

    ``recommend`` looks at each customer's purchases in the last ``window_days`` before the reference
    time (the last purchase seen, advanced by ``partial_fit``), takes the most recent purchase of each
    category, and proposes the bestsellers of its complement categories scored ``lift × recency ×
    popularity`` (recency halves every ``window_days / 2``; popularity is the item's decayed sales
    relative to its category's best seller).  A complement the customer already bought after the
    trigger is not suggested again from that trigger.  ``recommend_with_sources`` says which purchase
    caused each suggestion.

    Shops without categories cannot use this model: ``fit`` raises ``ModelFitError`` (callers catch it).
    On data too small for ``min_support`` the graph is empty (logged) and recommendations are empty.

    Parameters
    ----------
    window_days
        How soon after A a purchase of B counts, and how far back ``recommend`` looks.
    min_support
        Minimum number of distinct customers with a hit for a learned edge.
    shrinkage
        Pseudo-triggers pulling confidence toward the base rate (lift toward 1).
    max_per_category
        Learned complements kept per source category (overrides come on top).
    same_order
        Count B bought the same day as A (basket co-purchase; useful for groceries).
    overrides
        Path of an override YAML or an equivalent dict; ``None`` for none.
    min_lift
        Smallest shrunk lift a learned edge needs.  Lifts of 1.0–1.1 on thousands of triggers are
        sampling noise around "no effect"; a merchandiser should not have to read them.
    """

    reason = "complements_category"

    def __init__(
        self,
        *,
        window_days: float = 30.0,
        min_support: int = 20,
        shrinkage: float = 50.0,
        max_per_category: int = 10,
        same_order: bool = False,
        overrides: str | Path | Mapping[str, Any] | None = None,
        min_lift: float = 1.1,
    ) -> None:
        self.window_days = window_days
        self.min_support = min_support
        self.shrinkage = shrinkage
        self.max_per_category = max_per_category
        self.same_order = same_order
        self.overrides = overrides
        self.min_lift = min_lift

    def _validate_params(self) -> None:
        def number(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

        def integer(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        w, s, lift, top = self.window_days, self.shrinkage, self.min_lift, self.max_per_category
        check_param(self, "window_days", w, "a float in (0, inf)", number(w) and math.isfinite(w) and w > 0)
        check_param(self, "min_support", self.min_support, "an int in [1, inf)",
                    integer(self.min_support) and self.min_support >= 1)
        check_param(self, "shrinkage", s, "a float in [0, inf)", number(s) and math.isfinite(s) and s >= 0)
        check_param(self, "max_per_category", top, "an int in [1, inf)", integer(top) and top >= 1)
        check_param(self, "same_order", self.same_order, "a bool", isinstance(self.same_order, bool))
        check_param(self, "min_lift", lift, "a float in [1, inf)",
                    number(lift) and math.isfinite(lift) and lift >= 1)
        check_param(self, "overrides", self.overrides, "a path, a dict or None",
                    self.overrides is None or isinstance(self.overrides, (str, Path, Mapping)))

    # ------------------------------------------------------------------- fit
    def _fit(self, data: Dataset) -> None:
        if not data.has_categories:
            raise ModelFitError(
                f"{type(self).__name__}: the item catalogue of {data.source!r} has no categories, so no "
                "category-complement graph can be learned; fit without this generator"
            )
        overrides, origin = load_overrides(self.overrides)  # structural errors before the heavy work
        purchases = data.purchases
        if purchases.height == 0:
            raise ModelFitError(f"{type(self).__name__}: {data.source!r} has no purchases to learn complements "
                                "from")
        self.item_ids_ = IdMap.from_values(data.items["item_id"].to_list())
        self.item_cat_, self.categories_ = group_index(data.items, self.item_ids_, "category")
        self.customer_ids_ = sorted_ids(purchases["customer_id"])
        self.reference_time_ = newest(purchases["ts"])
        events = encode(purchases, self.customer_ids_, self.item_ids_, self.item_cat_)
        self._learn(events.filter(pl.col("g") >= 0))
        self._set_edges(apply_overrides(self._edges(), self.categories_, overrides, origin))
        self.item_pop_ = decayed_item_counts(events, len(self.item_ids_), self.reference_time_,
                                             ITEM_HALF_LIFE_DAYS)
        self.bought_ = OverlayCSR(binary_matrix(events, (len(self.customer_ids_), len(self.item_ids_))))
        self._set_history(events)
        self._derive()
        if len(self.edge_src_) == 0:
            log.warning("%s learned no complements (window_days=%s, min_support=%s): recommendations will be "
                        "empty", type(self).__name__, self.window_days, self.min_support)

    def _learn(self, events: pl.DataFrame) -> None:
        n = len(self.categories_)
        if events.height == 0:
            counts = SequenceCounts.empty(n)
        else:
            days = events.select("c", "g", d=pl.col("t") // _US_PER_DAY).unique().sort("c", "d", "g")
            day = days["d"].to_numpy().astype(np.int64)
            counts = sequence_counts(
                days["c"].to_numpy().astype(np.int64),
                days["g"].to_numpy().astype(np.int64),
                day,
                n,
                window=float(self.window_days),
                same_order=bool(self.same_order),
                first_day=int(day.min()),
                last_day=int(day.max()),
            )
        self.n_triggers_ = counts.trig
        self._set_edges(learn_edges(counts, shrinkage=self.shrinkage, min_support=self.min_support,
                                    min_lift=self.min_lift, max_per_category=self.max_per_category))

    def _edges(self) -> Edges:
        """The graph's edge arrays (the ``edge_*_`` attributes, the saved form) as one ``Edges``."""
        return Edges(self.edge_src_, self.edge_dst_, self.edge_support_, self.edge_confidence_,
                     self.edge_base_, self.edge_lift_, self.edge_origin_, self.edge_pinned_)

    def _set_edges(self, edges: Edges) -> None:
        (self.edge_src_, self.edge_dst_, self.edge_support_, self.edge_confidence_, self.edge_base_,
         self.edge_lift_, self.edge_origin_, self.edge_pinned_) = edges

    def _derive(self) -> None:
        n = len(self.categories_)
        self.edge_indptr_ = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.edge_src_, minlength=n), out=self.edge_indptr_[1:])
        self.ranked_ = ranked_group_items(self.item_cat_, self.item_pop_, n)
        self.category_index_ = {str(c): k for k, c in enumerate(self.categories_)}

    def _recent(self, events: pl.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The categorised purchases inside the look-back window of the reference time, sorted by
        (customer, ts, category, item): ``(customer of each, columns)``."""
        cutoff = to_us(self.reference_time_) - int(self.window_days * _US_PER_DAY)
        recent = events.filter((pl.col("g") >= 0) & (pl.col("t") >= cutoff)).sort("c", "t", "g", "i")
        cols = {"item": recent["i"].to_numpy().astype(np.int64), "cat": recent["g"].to_numpy().astype(np.int64),
                "ts": recent["t"].to_numpy().astype(np.int64)}
        return recent["c"].to_numpy().astype(np.int64), cols

    def _set_history(self, events: pl.DataFrame) -> None:
        """Customers' recent categorised purchases, one row per customer (``history_``: fold-in
        replaces one customer's row at a time)."""
        owner, cols = self._recent(events)
        self.history_ = RowTable(csr_from_coo(owner, len(self.customer_ids_)), cols)

    # ----------------------------------------------------------- the graph
    def graph_frame(self) -> pl.DataFrame:
        """All edges: ``(source, target, support, confidence, base_rate, lift, origin, rank, pinned)``.

        ``origin`` is ``"learned"`` or ``"override"``; ``rank`` is 1-based within the source (pins
        first, then by lift).  ``confidence``/``base_rate`` are null for edges only an override made.
        """
        self._check_fitted()
        names = self.categories_.astype(str)
        rank = rank_within(self.edge_src_) + 1
        return pl.DataFrame(
            {
                "source": pl.Series(names[self.edge_src_] if len(self.edge_src_) else [], dtype=pl.String),
                "target": pl.Series(names[self.edge_dst_] if len(self.edge_dst_) else [], dtype=pl.String),
                "support": pl.Series(self.edge_support_, dtype=pl.Int64),
                "confidence": pl.Series(self.edge_confidence_, dtype=pl.Float64, nan_to_null=True),
                "base_rate": pl.Series(self.edge_base_, dtype=pl.Float64, nan_to_null=True),
                "lift": pl.Series(self.edge_lift_, dtype=pl.Float64),
                "origin": pl.Series(np.array(_ORIGINS, dtype=object)[self.edge_origin_].astype(str)
                                    if len(self.edge_origin_) else [], dtype=pl.String),
                "rank": pl.Series(rank, dtype=pl.Int32),
                "pinned": pl.Series(self.edge_pinned_, dtype=pl.Boolean),
            }
        )

    def complements(self, categories: str | Sequence[str], n: int = 5) -> pl.DataFrame:
        """Top ``n`` complement categories of each given category (in the order given).

        Returns ``(source, rank, target, lift, support, confidence, base_rate, origin)``; a category
        with no complements contributes no rows; a category not in the catalogue raises
        ``UnknownIdError``.
        """
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        names = [categories] if isinstance(categories, str) else list(categories)
        missing = [c for c in names if c not in self.category_index_]
        if missing:
            raise UnknownIdError(f"{type(self).__name__}: unknown category {missing[0]!r}")
        graph = self.graph_frame().filter(pl.col("rank") <= n)
        order = pl.DataFrame({"source": names, "_o": list(range(len(names)))},
                             schema={"source": pl.String, "_o": pl.Int64})
        return (
            order.join(graph, on="source", how="inner")
            .sort("_o", "rank")
            .select("source", "rank", "target", "lift", "support", "confidence", "base_rate", "origin")
        )

    def export(self, path: str | Path, n: int = 10) -> Path:
        """Write the top ``n`` complements per category as CSV (``.csv``) or Markdown (``.md``).

        For merchandisers reviewing the graph before writing overrides.  Written atomically (a temp
        file beside ``path``, then ``os.replace``).
        """
        self._check_fitted()
        path = Path(path)
        suffix = path.suffix.lower()
        check_param(self, "path", str(path), "a file name ending in .csv or .md", suffix in EXPORT_SUFFIXES)
        frame = self.graph_frame().filter(pl.col("rank") <= n).select(
            "source", "rank", "target", "support", "confidence", "base_rate", "lift", "origin", "pinned")
        return write_graph(frame, path, n=n, window_days=self.window_days, same_order=self.same_order,
                           shrinkage=self.shrinkage, min_support=self.min_support, min_lift=self.min_lift)

    # ----------------------------------------------------------------- query
    def _candidates(self, rows: np.ndarray, n: int, exclude_bought: bool) -> dict[str, np.ndarray]:
        """Top-``n`` suggestions with their sources for customer rows (-1 = unknown: none)."""
        pos = np.flatnonzero(rows >= 0)
        owner, h = self.history_.gather(rows[pos])
        hist_item, hist_cat, hist_ts = h["item"], h["cat"], h["ts"]
        ev = np.arange(len(owner))
        p = pos[owner]
        ref = to_us(self.reference_time_)
        recent = hist_ts[ev] >= ref - int(self.window_days * _US_PER_DAY)
        p, ev = p[recent], ev[recent]
        # the most recent purchase of each (customer, category) is the trigger
        cat, ts = hist_cat[ev], hist_ts[ev]
        order = np.lexsort((hist_item[ev], -ts, cat, p))
        p, ev = p[order], ev[order]
        first = rank_within(p * len(self.categories_) + hist_cat[ev]) == 0
        t_pos, t_ev = p[first], ev[first]
        t_cat, t_ts = hist_cat[t_ev], hist_ts[t_ev]
        age_days = (ref - t_ts) / _US_PER_DAY
        recency = np.power(0.5, age_days / (self.window_days / 2.0))
        # complement edges of each trigger
        e_owner, e = expand_ranges(
            self.edge_indptr_[t_cat], self.edge_indptr_[t_cat + 1] - self.edge_indptr_[t_cat]
        )
        tgt = self.edge_dst_[e]
        weight = self.edge_lift_[e] * recency[e_owner]
        # a complement already bought on/after its trigger is fulfilled
        n_cat = len(self.categories_)
        last_key = t_pos * n_cat + t_cat  # sorted: t_pos then t_cat ascending
        want = t_pos[e_owner] * n_cat + tgt
        at = np.clip(np.searchsorted(last_key, want), 0, max(len(last_key) - 1, 0))
        if len(last_key):
            done = (last_key[at] == want) & (t_ts[at] >= t_ts[e_owner])
            e_owner, tgt, weight = e_owner[~done], tgt[~done], weight[~done]
        # one weight per (customer, target category): the strongest source
        order = np.lexsort((e_owner, -weight, tgt, t_pos[e_owner]))
        e_owner, tgt, weight = e_owner[order], tgt[order], weight[order]
        best = rank_within(t_pos[e_owner] * n_cat + tgt) == 0
        e_owner, tgt, weight = e_owner[best], tgt[best], weight[best]
        pair_pos = t_pos[e_owner]
        bought = bought_keys(self.bought_, rows) if exclude_bought else None
        owner2, item, score = group_candidates(pair_pos, tgt, weight, self.ranked_, self.item_cat_, n, bought)
        sel, rank = top_per_position(pair_pos[owner2], item, score, n)
        src = e_owner[owner2[sel]]
        return {
            "pos": pair_pos[owner2[sel]],
            "rank": rank,
            "item": item[sel],
            "score": score[sel],
            "source_cat": t_cat[src],
            "source_item": hist_item[t_ev[src]],
            "source_ts": t_ts[src],
        }

    def _recommend(self, rows: np.ndarray, n: int, *, exclude_bought: bool) -> tuple[np.ndarray, np.ndarray]:
        c = self._candidates(rows, n, exclude_bought)
        return pack(len(rows), n, c["pos"], c["rank"], c["item"], c["score"])

    def recommend_with_sources(
        self,
        customer_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        exclude_bought: bool = False,
        on_unknown: OnUnknown = "raise",
    ) -> pl.DataFrame:
        """``recommend`` with provenance, one row per suggestion, for explanations.

        Returns ``(customer_id, rank, item_id, category, score, source_category, source_item_id,
        source_ts)``: "because you bought <source_item_id> on <source_ts>".  Ranks are 1-based; the
        items and scores equal ``recommend``'s; customers without suggestions have no rows.
        """
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        ids, rows = resolve_rows(self, customer_ids, on_unknown)
        c, order = self._explained(rows, n, exclude_bought)
        cats = self.categories_.astype(str)
        return pl.DataFrame(
            {
                "customer_id": pl.Series(ids[c["pos"][order]].astype(str), dtype=pl.String),
                "rank": pl.Series(c["rank"][order] + 1, dtype=pl.Int32),
                "item_id": pl.Series(self.item_ids_.ids[c["item"][order]].astype(str), dtype=pl.String),
                "category": pl.Series(cats[self.item_cat_[c["item"][order]]], dtype=pl.String),
                "score": pl.Series(c["score"][order], dtype=pl.Float32),
                "source_category": pl.Series(cats[c["source_cat"][order]], dtype=pl.String),
                "source_item_id": pl.Series(self.item_ids_.ids[c["source_item"][order]].astype(str),
                                            dtype=pl.String),
                "source_ts": pl.Series(c["source_ts"][order], dtype=pl.Int64).cast(pl.Datetime("us")),
            }
        )

    def _explained(self, rows: np.ndarray, n: int, exclude_bought: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
        c = self._candidates(rows, n, exclude_bought)
        return c, np.lexsort((c["rank"], c["pos"]))

    def explain_arrays(
        self,
        customer_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        exclude_bought: bool = False,
        on_unknown: OnUnknown = "raise",
    ) -> Explained:
        """``recommend_with_sources`` as arrays (the per-request path)."""
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        _, rows = resolve_rows(self, customer_ids, on_unknown)
        c, order = self._explained(rows, n, exclude_bought)
        item_ids = self.item_ids_.ids
        return Explained(
            c["pos"][order], (c["rank"][order] + 1).astype(np.int32),
            item_ids[c["item"][order]].astype(str).astype(object), c["score"][order].astype(np.float32),
            item_ids[c["source_item"][order]].astype(str).astype(object), c["source_ts"][order].astype(np.int64),
        )

    # --------------------------------------------------------------- fold-in
    def partial_fit(self, interactions: pl.DataFrame) -> CategoryComplements:
        """Fold new purchases into customers' recent history (the graph and bestsellers stay as trained).

        Someone who just bought trousers gets belts immediately.  The reference time moves to the
        newest purchase seen, so older history ages and leaves the window.
        """
        self._check_fitted()
        purchases = purchases_only(interactions)
        if purchases.height == 0:
            return self
        self.customer_ids_ = self.customer_ids_.extend(purchases["customer_id"].to_list())
        self.reference_time_ = max(self.reference_time_, newest(purchases["ts"]))
        events = encode(purchases, self.customer_ids_, self.item_ids_, self.item_cat_)
        self.history_.grow(len(self.customer_ids_))
        rows = np.unique(events["c"].to_numpy())
        old_local, old = self.history_.gather(rows)
        both = pl.concat([
            pl.DataFrame({"c": rows[old_local], "i": old["item"], "t": old["ts"], "g": old["cat"]},
                         schema={"c": pl.Int64, "i": pl.Int64, "t": pl.Int64, "g": pl.Int64}),
            events.select(pl.col(k).cast(pl.Int64) for k in ("c", "i", "t", "g")),
        ])
        owner, cols = self._recent(both)  # only these customers' rows are rebuilt
        cut = np.searchsorted(owner, np.r_[rows, rows[-1] + 1] if len(rows) else rows)
        self.history_.set_many(rows, [{k: v[cut[j]:cut[j + 1]] for k, v in cols.items()} for j in range(len(rows))])
        self.bought_.add(events["c"].to_numpy(), events["i"].to_numpy(), how="or")
        return self

    def forget(self, customer_ids: Sequence[str]) -> CategoryComplements:
        """Erase customers' history and purchase flags (the graph holds only aggregates and stays)."""
        self._check_fitted()
        rows = self.customer_ids_.index(list(customer_ids))
        rows = np.unique(rows[rows >= 0])
        keep_rows = np.setdiff1d(np.arange(len(self.customer_ids_)), rows)
        self.customer_ids_ = IdMap(self.customer_ids_.ids[keep_rows])
        self.bought_.keep_rows(keep_rows)
        self.history_.keep_rows(keep_rows)
        return self

    # ----------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        b = self.bought_.tocsr()
        hist_indptr, hist = self.history_.arrays()
        arrays = {
            "item_ids": self.item_ids_.to_numpy(),
            "customer_ids": self.customer_ids_.to_numpy(),
            "categories": (self.categories_.astype(str) if len(self.categories_)
                           else np.array([], dtype="<U1")),
            "item_cat": self.item_cat_,
            "item_pop": self.item_pop_,
            "n_triggers": self.n_triggers_,
            **{f"edge_{name}": values for name, values in self._edges()._asdict().items()},
            "hist_cust": np.repeat(np.arange(len(hist_indptr) - 1, dtype=np.int64), np.diff(hist_indptr)),
            "hist_item": hist["item"],
            "hist_cat": hist["cat"],
            "hist_ts": hist["ts"],
            "bought_indptr": b.indptr,
            "bought_indices": b.indices,
        }
        return arrays, {"reference_time": self.reference_time_.isoformat()}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.item_ids_ = IdMap.of_saved(arrays["item_ids"])
        self.customer_ids_ = IdMap.of_saved(arrays["customer_ids"])
        self.categories_ = arrays["categories"].astype(object)
        self.item_cat_ = arrays["item_cat"].astype(np.int64)
        self.item_pop_ = arrays["item_pop"]
        self.n_triggers_ = arrays["n_triggers"]
        self._set_edges(Edges(*(arrays[f"edge_{name}"] for name in Edges._fields)))
        n_cust = len(self.customer_ids_)
        self.history_ = RowTable(csr_from_coo(arrays["hist_cust"].astype(np.int64), n_cust),
                                 {name: arrays[f"hist_{name}"].astype(np.int64) for name in ("item", "cat", "ts")},
                                 n_cust)
        ind = arrays["bought_indices"]
        self.bought_ = OverlayCSR(csr_of(arrays["bought_indptr"], ind, np.ones(len(ind), np.float32),
                                         (n_cust, len(self.item_ids_))))
        self.reference_time_ = datetime.fromisoformat(meta["reference_time"])
        self._derive()

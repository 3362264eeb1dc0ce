"""Buy-again and replenishment: the customer's own items, ranked by how likely they are rebought now.

Why a generator of its own: in grocery (and for basics like socks) most of next week's basket is
items the customer bought before; ranking them by decayed purchase frequency is a baseline that
collaborative models rarely beat.  Two things make it better than raw frequency:

* **repeat probability** — milk is rebought by almost everyone, a barbecue grill by almost no one.
  Each item's repeat rate (share of its buyers who bought it again) is shrunk toward its category's
  rate with ``prior_strength`` pseudo-buyers, so rare items borrow strength from their category;
* **due-ness** for *replenishable* categories — a customer who bought socks yesterday does not need
  socks today, but will in about two months.  A category is replenishable when most buyers come
  back (``repeat_rate ≥ min_repeat_rate`` with ``≥ min_repeaters`` repeaters) *and* they come back
  regularly (median per-customer coefficient of variation of the gaps ``≤ max_cv``).  For those,
  the score is multiplied by a log-normal bump peaking when the days since the customer's last
  purchase in the category reach the expected interval (the customer's own mean interval, shrunk
  toward the category's median).

Measured on Complete Journey (fit before max ts − 14 days, MAP@12 over the 1,726 test customers):
decayed frequency (half-life 60 days) 0.196; this model with its defaults 0.199.  Grocery categories
are repeat-bought but not *regular* (median per-customer gap CV ≈ 0.65–0.95, close to a memoryless
process), so none passes ``max_cv`` there and the due bump — which lowered MAP in every variant we
tried on that data — stays off; ``replenishable_categories`` still reports every category's repeat
rate and interval for business rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl

from recsys.dataset import Dataset
from recsys.exceptions import UnknownIdError
from recsys.idmap import IdMap
from recsys.models._overlay import RowTable
from recsys.models._util import (
    csr_from_coo,
    epoch_second,
    index_of,
    newest,
    purchases_of,
    resolve_rows,
    sorted_ids,
    to_datetime,
    top_n_triples,
)
from recsys.models._repeat_stats import (
    RepeatStats,
    expected_interval,
    merge_pairs,
    new_days,
    occasions,
    per_pair,
)
from recsys.models.base import Explained, OnUnknown, Recommendations, Recommender, check_param

__all__ = ["BuyAgain"]

_DAY = 86_400.0


class BuyAgain(Recommender):
    """A customer's previously bought items, ranked by decayed frequency × repeat probability × due-ness.

    Parameters
    ----------
    half_life_days
        Purchase days lose half their weight every ``half_life_days`` before the query time
        (``None``: plain counts).  60 days was best for decayed frequency on Complete Journey.
    min_repeaters
        Repeat buyers an item (or category) needs before its own median interval is trusted (else
        the category's, else the global one) and a category needs to be called replenishable.
    prior_strength
        Pseudo-buyers shrinking an item's repeat rate toward its category's (and a category's toward
        the global rate), and pseudo-gaps shrinking a customer's own interval toward the typical one.
    due_width
        Width (σ, in log-days) of the due bump ``exp(-log(days_since / expected)² / 2σ²)``.
    min_repeat_rate
        Share of a category's buyers who buy it again needed to call it replenishable.
    max_cv
        Largest median coefficient of variation of per-customer gaps for a replenishable category:
        replenishment means *regular* rebuying (a memoryless process has CV ≈ 1).
    repeat_exponent
        Exponent of the repeat probability in the score (0 ignores it; 1 multiplies it in fully).
    due_floor
        Score share kept when a replenishable item is not due at all, so frequency still orders
        the not-yet-due items among themselves.

    Notes
    -----
    The candidates are always items the customer bought, so ``exclude_bought=True`` returns
    all-padding rows by construction.  An item's ``replenishable`` flag in the catalogue, where not
    null, overrides the learned category flag.
    """

    reason = "buy_again"

    def __init__(
        self,
        *,
        half_life_days: float | None = 60.0,
        min_repeaters: int = 5,
        prior_strength: float = 5.0,
        due_width: float = 0.5,
        min_repeat_rate: float = 0.4,
        max_cv: float = 0.5,
        repeat_exponent: float = 0.3,
        due_floor: float = 0.05,
    ) -> None:
        self.half_life_days = half_life_days
        self.min_repeaters = min_repeaters
        self.prior_strength = prior_strength
        self.due_width = due_width
        self.min_repeat_rate = min_repeat_rate
        self.max_cv = max_cv
        self.repeat_exponent = repeat_exponent
        self.due_floor = due_floor

    def _validate_params(self) -> None:
        def num(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

        hl, s = self.half_life_days, self.prior_strength
        check_param(self, "half_life_days", hl, "a float in (0, inf) or None",
                    hl is None or (num(hl) and hl > 0))
        check_param(self, "min_repeaters", self.min_repeaters, "an int in [1, inf)",
                    isinstance(self.min_repeaters, (int, np.integer)) and self.min_repeaters >= 1)
        check_param(self, "prior_strength", s, "a float in [0, inf)", num(s) and s >= 0)
        check_param(self, "due_width", self.due_width, "a float in (0, inf)",
                    num(self.due_width) and self.due_width > 0)
        check_param(self, "min_repeat_rate", self.min_repeat_rate, "a float in [0, 1]",
                    num(self.min_repeat_rate) and 0 <= self.min_repeat_rate <= 1)
        check_param(self, "max_cv", self.max_cv, "a float in [0, inf)", num(self.max_cv) and self.max_cv >= 0)
        check_param(self, "repeat_exponent", self.repeat_exponent, "a float in [0, inf)",
                    num(self.repeat_exponent) and self.repeat_exponent >= 0)
        check_param(self, "due_floor", self.due_floor, "a float in [0, 1]",
                    num(self.due_floor) and 0 <= self.due_floor <= 1)

    # ------------------------------------------------------------------------------------ fit
    def _fit(self, data: Dataset) -> None:
        p = purchases_of(data.interactions)
        self.item_ids_ = sorted_ids(data.items["item_id"], p["item_id"])
        self.customer_ids_ = sorted_ids(p["customer_id"])
        self.reference_time_ = newest(p["ts"], datetime(1970, 1, 1))
        n_items = len(self.item_ids_)
        cat_frame = data.items.select("item_id", "category").filter(pl.col("category").is_not_null())
        self.categories_ = sorted_ids(cat_frame["category"])
        item_cat = np.full(n_items, -1, dtype=np.int64)
        item_cat[index_of(cat_frame["item_id"], self.item_ids_)] = index_of(
            cat_frame["category"], self.categories_
        )
        self.item_cat_ = item_cat
        override = data.items.select("item_id", "replenishable").filter(pl.col("replenishable").is_not_null())
        self.item_override_ = np.full(n_items, -1, dtype=np.int8)  # -1 learn, 0 no, 1 yes
        self.item_override_[index_of(override["item_id"], self.item_ids_)] = (
            override["replenishable"].cast(pl.Int8).to_numpy()
        )

        c = index_of(p["customer_id"], self.customer_ids_)
        i = index_of(p["item_id"], self.item_ids_)
        ts = p["ts"].dt.epoch("us").to_numpy().astype(np.int64)
        ok = i >= 0
        c, i, ts = c[ok], i[ok], ts[ok]
        self.weight_time_ = self.reference_time_
        ref = self._ref_us()
        ci = per_pair(occasions(c, i, n_items, ts), ref, self.half_life_days)
        has_cat = item_cat[i] >= 0
        n_cats = max(len(self.categories_), 1)
        cc = per_pair(occasions(c[has_cat], item_cat[i[has_cat]], n_cats, ts[has_cat]), ref, None)
        self.stats_ = RepeatStats.learn(
            ci, cc, item_cat=item_cat, item_override=self.item_override_, n_items=n_items,
            n_cats=len(self.categories_), prior_strength=self.prior_strength,
            min_repeaters=self.min_repeaters, min_repeat_rate=self.min_repeat_rate, max_cv=self.max_cv)
        self._store_pairs(ci, cc)

    def _ref_us(self) -> int:
        """The time decayed weights are relative to: the fit's reference time (fold-in keeps it)."""
        return int(pl.Series([self.weight_time_], dtype=pl.Datetime("us")).dt.epoch("us")[0])

    def _store_pairs(self, ci: dict[str, np.ndarray], cc: dict[str, np.ndarray]) -> None:
        """Per-customer pair tables, one row per customer: ``pairs_`` (items) and ``cat_pairs_``
        (categories), each sorted by item/category within the customer (``RowTable``: one customer's
        fold-in replaces that customer's row only)."""
        n_cust, n_items = len(self.customer_ids_), max(len(self.item_ids_), 1)
        n_cats = max(len(self.categories_), 1)
        self.pairs_ = RowTable(csr_from_coo(ci["key"] // n_items, n_cust), {
            "items": (ci["key"] % n_items).astype(np.int32), "n": ci["n"].astype(np.int32),
            "first": ci["first"].astype(np.float64), "last": ci["last"].astype(np.float64),
            "w": ci["w"].astype(np.float64)})
        self.cat_pairs_ = RowTable(csr_from_coo(cc["key"] // n_cats, n_cust), {
            "cats": (cc["key"] % n_cats).astype(np.int32), "n": cc["n"].astype(np.int32),
            "first": cc["first"].astype(np.float64), "last": cc["last"].astype(np.float64)})

    # ---------------------------------------------------------------------------------- query
    def _candidates(self, rows: np.ndarray, at: datetime | None) -> dict[str, np.ndarray]:
        """Every (local row, item) candidate of ``rows`` with its score, last purchase and expected interval."""
        local, pair = self.pairs_.gather(rows)
        items = pair["items"].astype(np.int64)
        at_dt = self.reference_time_ if at is None else at
        at_sec, ref_sec = epoch_second(at_dt), epoch_second(self.weight_time_)
        shift = (
            1.0 if self.half_life_days is None else 0.5 ** ((at_sec - ref_sec) / _DAY / self.half_life_days)
        )
        stats = self.stats_
        score = pair["w"] * shift * np.power(stats.item_repeat_rate[items], self.repeat_exponent)
        last = pair["last"]
        expected = expected_interval(pair["n"], pair["first"], last, stats.item_typical[items],
                                     self.prior_strength)
        # Replenishable items: due-ness at category level when the item has a category.
        repl = stats.item_replenishable[items]
        due_last = last.copy()
        cat = self.item_cat_[items]
        n_cats = len(self.categories_)
        use_cat = repl & (cat >= 0)
        if use_cat.any():
            cc_local, cc = self.cat_pairs_.gather(rows)
            cc_key = cc_local * max(n_cats, 1) + cc["cats"]  # sorted: local ascending, category within
            if len(cc_key):
                key = local[use_cat] * max(n_cats, 1) + cat[use_cat]
                at_pos = np.clip(np.searchsorted(cc_key, key), 0, len(cc_key) - 1)
                found = cc_key[at_pos] == key
                idx = np.flatnonzero(use_cat)[found]
                cp = at_pos[found]
                due_last[idx] = cc["last"][cp]
                expected[idx] = expected_interval(cc["n"][cp], cc["first"][cp], cc["last"][cp],
                                                  stats.cat_typical[cat[idx]], self.prior_strength)
        if repl.any():
            days = np.maximum((at_sec - due_last[repl]) / _DAY, 0.5)
            z = np.log(days / expected[repl]) / self.due_width
            due = np.exp(-0.5 * z * z)
            score[repl] *= self.due_floor + (1.0 - self.due_floor) * due
        return {"local": local, "items": items, "score": score, "last": last, "expected": expected,
                "due_last": due_last}

    def _recommend(self, rows: np.ndarray, n: int, *, exclude_bought: bool) -> tuple[np.ndarray, np.ndarray]:
        return self._recommend_at(rows, n, exclude_bought=exclude_bought, at=None)

    def _recommend_at(
        self, rows: np.ndarray, n: int, *, exclude_bought: bool, at: datetime | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if exclude_bought:  # every candidate is a bought item
            return np.full((len(rows), n), -1, np.int64), np.full((len(rows), n), -np.inf, np.float32)
        cand = self._candidates(rows, at)
        return top_n_triples(cand["local"], cand["items"], cand["score"].astype(np.float32), len(rows), n)

    def _check_at(self, at: datetime | date | None) -> datetime | None:
        ok = at is None or isinstance(at, (datetime, date))
        check_param(self, "at", at, "a datetime or None", ok)
        if at is not None and not isinstance(at, datetime):
            at = datetime(at.year, at.month, at.day)
        return at

    def recommend(
        self,
        customer_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        exclude_bought: bool = False,
        on_unknown: OnUnknown = "raise",
        at: datetime | date | None = None,
    ) -> Recommendations:
        """Top-``n`` items to buy again, as ``Recommender.recommend``.

        Parameters
        ----------
        at
            Reference time for due-ness and decay; default the model's reference time (the last
            purchase seen in ``fit`` or ``partial_fit``).
        exclude_bought
            Returns all-padding rows: every buy-again candidate is a bought item.
        """
        if at is None:
            return super().recommend(customer_ids, n, exclude_bought=exclude_bought, on_unknown=on_unknown)
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        at = self._check_at(at)
        _, rows = resolve_rows(self, customer_ids, on_unknown)
        idx, scores = self._recommend_at(rows, n, exclude_bought=exclude_bought, at=at)
        out_ids, out_scores = self._to_ids(idx, scores, n)
        if isinstance(customer_ids, str):
            return Recommendations(out_ids[0], out_scores[0])
        return Recommendations(out_ids, out_scores)

    def recommend_with_sources(
        self,
        customer_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        at: datetime | date | None = None,
        on_unknown: OnUnknown = "raise",
    ) -> pl.DataFrame:
        """``recommend`` as a long frame with what explains each item.

        Columns: ``customer_id``, ``rank`` (1 = best), ``item_id``, ``score``, ``last_bought_ts``
        (the customer's last purchase of the item) and ``expected_interval_days`` (the interval the
        due-ness used: own mean shrunk toward the typical one; category level for replenishable
        categories) and ``due_ts`` (the predicted next purchase, as ``due_dates``).  Padding is omitted.
        """
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        at = self._check_at(at)
        ids, rows = resolve_rows(self, customer_ids, on_unknown)
        b, rank, items, scores, cand, pick = self._explained(rows, n, at)
        return pl.DataFrame(
            {
                "customer_id": pl.Series(ids[b].astype(str).tolist(), dtype=pl.String),
                "rank": pl.Series(rank + 1, dtype=pl.Int32),
                "item_id": pl.Series(items.tolist(), dtype=pl.String),
                "score": pl.Series(scores, dtype=pl.Float32),
                "last_bought_ts": to_datetime(cand["last"][pick]),
                "expected_interval_days": pl.Series(cand["expected"][pick], dtype=pl.Float64),
                "due_ts": to_datetime(cand["due_last"][pick] + cand["expected"][pick] * _DAY),
            }
        )

    def due_dates(
        self,
        customer_ids: str | Sequence[str] | np.ndarray,
        *,
        at: datetime | date | None = None,
        on_unknown: OnUnknown = "empty",
    ) -> pl.DataFrame:
        """Every item each customer bought, with when they are predicted to buy it next.

        The prediction is the one due-ness scores with: the last purchase (of the item's category for
        replenishable categories — socks are due whichever pair was bought — of the item otherwise)
        plus the expected interval (the customer's own mean gap shrunk toward the item's or
        category's typical one).  Columns: ``customer_id``, ``item_id``, ``last_bought_ts`` (the
        item), ``expected_interval_days``, ``due_ts`` (the predicted next purchase).  Unknown
        customers have no rows (``on_unknown="raise"`` refuses them).
        """
        self._check_fitted()
        at = self._check_at(at)
        ids, rows = resolve_rows(self, customer_ids, on_unknown)
        cand = self._candidates(rows, at)
        due = cand["due_last"] + cand["expected"] * _DAY
        return pl.DataFrame({
            "customer_id": pl.Series(ids[cand["local"]].astype(str).tolist(), dtype=pl.String),
            "item_id": pl.Series(self.item_ids_.ids[cand["items"]].astype(str).tolist(), dtype=pl.String),
            "last_bought_ts": to_datetime(cand["last"]),
            "expected_interval_days": pl.Series(cand["expected"], dtype=pl.Float64),
            "due_ts": to_datetime(due),
        })

    def _explained(self, rows: np.ndarray, n: int, at: datetime | None) -> tuple[Any, ...]:
        cand = self._candidates(rows, at)
        idx, scores = top_n_triples(
            cand["local"], np.arange(len(cand["items"])), cand["score"].astype(np.float32), len(rows), n
        )
        b, rank = np.nonzero(idx >= 0)
        pick = idx[b, rank]
        items = self.item_ids_.ids[cand["items"][pick]].astype(str).astype(object)
        return b, rank, items, scores[b, rank].astype(np.float32), cand, pick

    def explain_arrays(
        self,
        customer_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        on_unknown: OnUnknown = "raise",
    ) -> Explained:
        """``recommend_with_sources`` as arrays (the per-request path): the source of a buy-again
        suggestion is the item itself, bought last on ``source_us``."""
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        _, rows = resolve_rows(self, customer_ids, on_unknown)
        b, rank, items, scores, cand, pick = self._explained(rows, n, None)
        last_us = np.round(np.asarray(cand["last"][pick]) * 1_000_000).astype(np.int64)
        return Explained(b, (rank + 1).astype(np.int32), items, scores, items, last_us)

    def replenishable_categories(self) -> pl.DataFrame:
        """Every category's repeat statistics and whether it is replenishable, most repeated first.

        Columns: ``category``, ``repeat_rate`` (share of buyers who bought it on ≥ 2 days),
        ``median_interval_days`` (median over repeaters of their mean gap; null without repeaters),
        ``n_repeaters``, ``replenishable``, ``n_buyers``, ``interval_cv`` (median per-customer
        coefficient of variation of gaps; null with fewer than ``min_repeaters`` customers having
        three purchase days).
        """
        self._check_fitted()
        st = self.stats_
        frame = pl.DataFrame({
            "category": pl.Series(self.categories_.ids.astype(str).tolist(), dtype=pl.String),
            "repeat_rate": pl.Series(st.cat_raw_rate, dtype=pl.Float64),
            "median_interval_days": pl.Series(st.cat_interval, dtype=pl.Float64).fill_nan(None),
            "n_repeaters": pl.Series(st.cat_repeaters, dtype=pl.Int64),
            "replenishable": pl.Series(st.cat_replenishable, dtype=pl.Boolean),
            "n_buyers": pl.Series(st.cat_buyers, dtype=pl.Int64),
            "interval_cv": pl.Series(st.cat_cv, dtype=pl.Float64).fill_nan(None),
        })
        return frame.sort(["repeat_rate", "category"], descending=[True, False])

    def interval(self, category: str) -> float | None:
        """Median inter-purchase interval of ``category`` in days (``None`` when nobody rebought it)."""
        self._check_fitted()
        k = self.categories_.get(str(category))
        if k < 0:
            raise UnknownIdError(f"{type(self).__name__}: unknown category {category!r}")
        value = float(self.stats_.cat_interval[k])
        return None if math.isnan(value) else value

    # ------------------------------------------------------------------------------- fold-in
    def partial_fit(self, interactions: pl.DataFrame) -> BuyAgain:
        """Fold new purchases into customers' counts and last-purchase times.

        A just-bought replenishable item stops being due.  Item and category statistics stay as
        trained; the reference time moves to the latest purchase seen.  Items the model has never
        seen are ignored.  A purchase on the same day as the customer's last known purchase of that
        item (or category) is not a new purchase day.  Costs time proportional to the customers in
        ``interactions`` (their rows are recomputed; weights stay relative to the fit's reference
        time, so no other customer's pair is touched).
        """
        self._check_fitted()
        p = purchases_of(interactions)
        if p.height == 0:
            return self
        self.customer_ids_ = self.customer_ids_.extend(p["customer_id"].unique().sort().to_list())
        self.pairs_.grow(len(self.customer_ids_))
        self.cat_pairs_.grow(len(self.customer_ids_))
        self.reference_time_ = max(self.reference_time_, newest(p["ts"]))
        c = index_of(p["customer_id"], self.customer_ids_)
        i = index_of(p["item_id"], self.item_ids_)
        ts = p["ts"].dt.epoch("us").to_numpy().astype(np.int64)
        ok = i >= 0
        c, i, ts = c[ok], i[ok], ts[ok]
        if len(c) == 0:
            return self
        rows, local = np.unique(c, return_inverse=True)
        has_cat = self.item_cat_[i] >= 0
        self._fold(self.pairs_, "items", rows, local, i, ts, max(len(self.item_ids_), 1), self.half_life_days)
        self._fold(self.cat_pairs_, "cats", rows, local[has_cat], self.item_cat_[i[has_cat]], ts[has_cat],
                   max(len(self.categories_), 1), None)
        return self

    def _fold(self, table: RowTable, group: str, rows: np.ndarray, local: np.ndarray, g: np.ndarray,
              ts: np.ndarray, n_groups: int, half_life: float | None) -> None:
        """Merge new occasions (``local`` = index into ``rows``, group ``g``) into those rows of ``table``."""
        old_local, old = table.gather(rows)
        old_pairs = {"key": old_local * n_groups + old[group], "n": old["n"], "first": old["first"],
                     "last": old["last"], "w": old.get("w", np.zeros(len(old_local)))}
        occ = new_days(occasions(local, g, n_groups, ts), old_pairs)
        merged = merge_pairs(old_pairs, per_pair(occ, self._ref_us(), half_life, future_weighs_more=True))
        owner = merged["key"] // n_groups
        cut = np.searchsorted(owner, np.arange(len(rows) + 1))
        cols = {group: (merged["key"] % n_groups).astype(np.int32), "n": merged["n"].astype(np.int32),
                "first": merged["first"], "last": merged["last"], "w": merged["w"]}
        cols = {k: v for k, v in cols.items() if k in table.columns}
        table.set_many(rows, [{k: v[cut[j]:cut[j + 1]] for k, v in cols.items()} for j in range(len(rows))])

    def forget(self, customer_ids: Sequence[str]) -> BuyAgain:
        """Erase customers' personal state (item and category statistics keep their contribution)."""
        self._check_fitted()
        rows = self.customer_ids_.index([str(c) for c in customer_ids])
        drop = np.zeros(len(self.customer_ids_), dtype=bool)
        drop[rows[rows >= 0]] = True
        keep = np.flatnonzero(~drop)
        self.pairs_.keep_rows(keep)
        self.cat_pairs_.keep_rows(keep)
        self.customer_ids_ = IdMap(self.customer_ids_.ids[keep])
        return self

    # --------------------------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {"item_cat": self.item_cat_, "item_override": self.item_override_,
                                         **self.stats_.arrays()}
        indptr, pairs = self.pairs_.arrays()
        cc_indptr, cc = self.cat_pairs_.arrays()
        cc_rows = np.repeat(np.arange(len(cc_indptr) - 1, dtype=np.int64), np.diff(cc_indptr))
        arrays |= {"ci_indptr": indptr, "ci_items": pairs["items"], "ci_n": pairs["n"], "ci_first": pairs["first"],
                   "ci_last": pairs["last"], "ci_w": pairs["w"],
                   "cc_key": cc_rows * max(len(self.categories_), 1) + cc["cats"], "cc_n": cc["n"],
                   "cc_first": cc["first"], "cc_last": cc["last"]}
        arrays |= {
            "item_ids": self.item_ids_.to_numpy(),
            "customer_ids": self.customer_ids_.to_numpy(),
            "categories": self.categories_.to_numpy(),
        }
        meta = {"reference_time": self.reference_time_.isoformat(), "weight_time": self.weight_time_.isoformat(),
                **self.stats_.meta()}
        return arrays, meta

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.item_ids_ = IdMap.of_saved(arrays["item_ids"])
        self.customer_ids_ = IdMap.of_saved(arrays["customer_ids"])
        self.categories_ = IdMap(arrays["categories"])
        self.item_cat_, self.item_override_ = arrays["item_cat"], arrays["item_override"]
        self.stats_ = RepeatStats.from_state(arrays, meta)
        self.reference_time_ = datetime.fromisoformat(meta["reference_time"])
        # bundles saved before fold-in kept weights relative to the fit time carry no weight_time
        self.weight_time_ = datetime.fromisoformat(meta.get("weight_time", meta["reference_time"]))
        n_cust = len(self.customer_ids_)
        n_cats = max(len(self.categories_), 1)
        self.pairs_ = RowTable(arrays["ci_indptr"], {
            "items": arrays["ci_items"], "n": arrays["ci_n"], "first": arrays["ci_first"],
            "last": arrays["ci_last"], "w": arrays["ci_w"]}, n_cust)
        cc_key = arrays["cc_key"].astype(np.int64)
        self.cat_pairs_ = RowTable(csr_from_coo(cc_key // n_cats, n_cust), {
            "cats": (cc_key % n_cats).astype(np.int32), "n": arrays["cc_n"], "first": arrays["cc_first"],
            "last": arrays["cc_last"]}, n_cust)

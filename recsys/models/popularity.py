"""Popularity and trending: the cold-start fallback everywhere, and the baseline every model must beat.

Why time decay: a shop's bestsellers drift with seasons; counting last winter's coats equally with
this week's sales recommends the wrong season.  Trending compares the recent sales rate with a longer
window's rate (both smoothed by a prior) so a small item rising fast shows up without noise winning.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys._time import newest
from recsys.dataset import Dataset, purchases_only
from recsys.idmap import IdMap
from recsys.models._overlay import OverlayCSR
from recsys.models._util import sorted_ids
from recsys.models.base import Recommendations, Recommender, check_param, interaction_matrix, top_n

__all__ = ["Popularity"]


class Popularity(Recommender):
    """Time-decayed bestsellers, overall and per category, plus trending.

    Parameters
    ----------
    half_life_days
        Purchases lose half their weight every ``half_life_days`` before the reference time (the last
        training purchase).  ``None`` counts every purchase equally (plain global popularity).
    trend_window_days, trend_base_days
        Trending = smoothed rate over the last ``trend_window_days`` ÷ rate over ``trend_base_days``.
    trend_prior
        Pseudo-count added to both windows so items with two sales do not top the trend list.
    weight
        ``"lines"`` counts purchase lines (default: a litre of fuel is not 40 sales); ``"quantity"``
        sums units, for shops where quantities are small and meaningful.
    """

    reason = "popular"
    serves_unknown = True

    def __init__(
        self,
        *,
        half_life_days: float | None = 30.0,
        trend_window_days: float = 14.0,
        trend_base_days: float = 90.0,
        trend_prior: float = 5.0,
        weight: Literal["lines", "quantity"] = "lines",
    ) -> None:
        self.half_life_days = half_life_days
        self.trend_window_days = trend_window_days
        self.trend_base_days = trend_base_days
        self.trend_prior = trend_prior
        self.weight = weight

    def _validate_params(self) -> None:
        hl = self.half_life_days
        check_param(self, "half_life_days", hl, "a float in (0, inf) or None", hl is None or hl > 0)
        check_param(self, "trend_window_days", self.trend_window_days, "a float in (0, trend_base_days)",
                    0 < self.trend_window_days < self.trend_base_days)
        check_param(self, "trend_prior", self.trend_prior, "a float in [0, inf)", self.trend_prior >= 0)
        check_param(self, "weight", self.weight, "one of 'lines', 'quantity'", self.weight in ("lines", "quantity"))

    def _fit(self, data: Dataset) -> None:
        purchases = data.purchases
        self.item_ids_ = IdMap.from_values(data.items["item_id"].to_list())
        self.customer_ids_ = sorted_ids(purchases["customer_id"])
        self.reference_time_: datetime = newest(purchases["ts"], datetime(1970, 1, 1))
        cats = data.items.select("item_id", "category")
        order = self.item_ids_.index(cats["item_id"].to_list())
        category = np.full(len(self.item_ids_), "", dtype=object)
        category[order] = cats["category"].fill_null("").to_list()
        self.item_category_ = category
        self.scores_ = self._counts(purchases, self.half_life_days)
        recent = self._counts(purchases.filter(pl.col("ts") > self.reference_time_ - timedelta(days=self.trend_window_days)), None)
        base = self._counts(purchases.filter(pl.col("ts") > self.reference_time_ - timedelta(days=self.trend_base_days)), None)
        ratio = self.trend_base_days / self.trend_window_days
        self.trend_ = ((recent * ratio + self.trend_prior) / (base + self.trend_prior)).astype(np.float32)
        self.bought_ = OverlayCSR(interaction_matrix(purchases, self.customer_ids_, self.item_ids_, weight="binary"))

    def _counts(self, purchases: pl.DataFrame, half_life: float | None) -> np.ndarray:
        idx = self.item_ids_.index_series(purchases["item_id"])
        w = (purchases["quantity"].to_numpy().astype(np.float64) if self.weight == "quantity"
             else np.ones(purchases.height, dtype=np.float64))
        if half_life is not None and purchases.height:
            age = ((self.reference_time_ - purchases["ts"]).dt.total_seconds() / 86400.0).to_numpy()
            w = w * np.power(0.5, np.clip(age, 0, None) / half_life)
        keep = idx >= 0
        return np.bincount(idx[keep], weights=w[keep], minlength=len(self.item_ids_)).astype(np.float32)

    # ----------------------------------------------------------------- query
    def _recommend(self, rows: np.ndarray, n: int, *, exclude_bought: bool) -> tuple[np.ndarray, np.ndarray]:
        """The same global list for everyone, minus each customer's bought items when asked.

        Never materialises customers × catalogue: the global top ``n + longest history`` is enough,
        since a customer can remove at most their own bought items from it.
        """
        b = len(rows)
        extra = 0
        if exclude_bought and b:
            known = rows[rows >= 0]
            extra = int(np.diff(self.bought_[known].indptr).max()) if len(known) else 0
        ranked_idx, ranked_val = self._ranked()
        top_idx, top_val = ranked_idx[: n + extra], ranked_val[: n + extra]
        out_idx = np.full((b, n), -1, dtype=np.int64)
        out_val = np.full((b, n), -np.inf, dtype=np.float32)
        if not exclude_bought:
            k = min(n, len(top_idx))
            out_idx[:, :k] = top_idx[:k]
            out_val[:, :k] = top_val[:k]
            return out_idx, out_val
        for r, row in enumerate(rows):
            if row >= 0:
                keep = ~np.isin(top_idx, self.bought_.row_arrays(int(row))[0])
                idx, val = top_idx[keep][:n], top_val[keep][:n]
            else:
                idx, val = top_idx[:n], top_val[:n]
            out_idx[r, :len(idx)] = idx
            out_val[r, :len(val)] = val
        return out_idx, out_val

    def _ranked(self) -> tuple[np.ndarray, np.ndarray]:
        """Every item with a positive score, best first (ties by index), sorted once per fitted state:
        the per-request path asks for the same global list every time, and sorting a large catalogue
        per call (92k items on Complete Journey) cost ~1 ms."""
        cache = getattr(self, "_ranked_cache", None)
        if cache is None or cache[0] is not self.scores_:
            scores = self.scores_.astype(np.float32)
            idx = np.flatnonzero(scores > 0)
            order = np.lexsort((idx, -scores[idx]))
            cache = (self.scores_, idx[order].astype(np.int64), scores[idx[order]])
            self._ranked_cache = cache
        return cache[1], cache[2]

    def popular(self, n: int = 10, *, category: str | None = None, trending: bool = False) -> Recommendations:
        """Top ``n`` items overall or in ``category`` (by decayed count, or by trend if ``trending``)."""
        self._check_fitted()
        base = self.trend_ if trending else self.scores_
        scores = np.where(self.scores_ > 0, base, -np.inf).astype(np.float32)
        if category is not None:
            scores = np.where(self.item_category_ == category, scores, -np.inf)
        idx, vals = top_n(scores[None, :], n)
        ids, out = self._to_ids(idx, vals, n)
        return Recommendations(ids[0], out[0])

    def partial_fit(self, interactions: pl.DataFrame) -> Popularity:
        """New purchases mark items as bought for their customers (counts stay as trained)."""
        self._check_fitted()
        purchases = purchases_only(interactions)
        self.customer_ids_ = self.customer_ids_.extend(purchases["customer_id"].to_list())
        self.bought_.add(self.customer_ids_.index(purchases["customer_id"].to_list()),
                         self.item_ids_.index(purchases["item_id"].to_list()), how="or")
        return self

    def forget(self, customer_ids: Sequence[str]) -> Popularity:
        """Remove customers' rows of what they bought (erasure); item popularity stays as trained."""
        self._check_fitted()
        rows = self.customer_ids_.index(customer_ids)
        rows = rows[rows >= 0]
        keep = np.setdiff1d(np.arange(len(self.customer_ids_)), rows)
        self.customer_ids_ = IdMap(self.customer_ids_.ids[keep])
        self.bought_.keep_rows(keep)
        return self

    # ----------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        b = self.bought_.tocsr()
        arrays = {
            "item_ids": self.item_ids_.to_numpy(),
            "customer_ids": self.customer_ids_.to_numpy(),
            "item_category": self.item_category_.astype(str),
            "scores": self.scores_,
            "trend": self.trend_,
            "bought_indptr": b.indptr,
            "bought_indices": b.indices,
        }
        return arrays, {"reference_time": self.reference_time_.isoformat()}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.item_ids_ = IdMap.of_saved(arrays["item_ids"])
        self.customer_ids_ = IdMap.of_saved(arrays["customer_ids"])
        self.item_category_ = arrays["item_category"].astype(object)
        self.scores_ = arrays["scores"]
        self.trend_ = arrays["trend"]
        ind = arrays["bought_indices"]
        self.bought_ = OverlayCSR(sp.csr_matrix((np.ones(len(ind), np.float32), ind, arrays["bought_indptr"]),
                                                shape=(len(self.customer_ids_), len(self.item_ids_))))
        self.reference_time_ = datetime.fromisoformat(meta["reference_time"])

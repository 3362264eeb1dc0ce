"""The plumbing the ``implicit``-backed generators share: id maps, the history CSR, fold-in, erasure,
``similar`` and the factor models' scoring (see ``recsys.models.implicit_cf`` for why they wrap implicit).

Why a module of its own: ALS, BPR and item-kNN differ only in what they learn and how they score;
everything about ids, histories, live events and persistence is the same and lives here once.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal, Self

import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.cpu.topk import topk

from recsys.dataset import Dataset
from recsys.exceptions import ModelFitError, SchemaError, UnknownIdError
from recsys.idmap import IdMap
from recsys.models._implicit_util import (
    csr_arrays,
    csr_from_arrays,
    from_implicit,
    purchases_only,
    single_blas,
)
from recsys.models._overlay import OverlayCSR, ensure_len
from recsys.models._util import csr_from_coo, sorted_ids
from recsys.models.base import (
    OnUnknown,
    Recommendations,
    Recommender,
    check_param,
    interaction_matrix,
    purchase_entries,
    top_n,
)
from recsys.schema import conform

__all__ = ["Similarity", "Weighting"]

Weighting = Literal["bm25", "log", "none"]
Similarity = Literal["cosine", "bm25", "tfidf"]

#: Dense (customers or query items) × catalogue cells scored at once by ``ItemKNN.recommend`` and
#: the factor models' ``similar`` (4M float64 = 32 MB).  For ItemKNN, dense blocks + argpartition
#: beat a sparse row-wise sort by ~10× on Complete Journey, where one customer's neighbourhood
#: covers tens of thousands of items.
_SCORE_BLOCK_CELLS = 4_000_000


def _block_rows(n_items: int) -> int:
    """Rows per block so that a dense block holds about ``_SCORE_BLOCK_CELLS`` cells."""
    return max(1, _SCORE_BLOCK_CELLS // max(n_items, 1))

#: Below this much work (stored cells to fit on, or customers × items to score) implicit runs on
#: one thread: OpenMP start-up and barriers cost more than they save on small problems, badly so
#: on a busy machine (a 2,000 × 600 ALS fit: 0.2 s on one thread, 0.8 s on two).  Thread count
#: does not change results: implicit's ALS, kNN and top-k work row by row.
_PARALLEL_MIN_WORK = 200_000


def _threads(work: int) -> int:
    """implicit's ``num_threads`` for a job of size ``work`` (0 = every core)."""
    return 0 if work >= _PARALLEL_MIN_WORK else 1


def _check_half_life(owner: object, value: object) -> None:
    ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0)
    check_param(owner, "half_life_days", value, "a float in (0, inf) or None", ok)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class _ImplicitRecommender(Recommender):
    """Plumbing shared by the three generators: id maps, history CSR, fold-in, erasure, ``similar``.

    Subclasses implement ``_learn`` (fit the implicit model on ``user_items_``), ``_after_absorb``
    (re-solve folded-in rows), ``_drop_rows``, ``_similar`` and their part of the state.
    """

    reason: ClassVar[str] = "similar_customers"
    _fitted_attr: ClassVar[str] = "model_"

    half_life_days: float | None

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Dataset) -> None:
        purchases = data.purchases
        if purchases.height == 0:
            raise ModelFitError(
                f"{type(self).__name__}: the data set has no purchases to learn from "
                f"(source {data.source!r}); collaborative filtering needs purchase history"
            )
        item_ids = IdMap.from_values(data.items["item_id"].to_list())
        customer_ids = sorted_ids(purchases["customer_id"])
        reference_time: datetime = purchases["ts"].max()  # type: ignore[assignment]
        counts = interaction_matrix(
            purchases, customer_ids, item_ids, weight="count",
            half_life_days=self.half_life_days, reference_time=reference_time,
        )
        if counts.nnz == 0:
            raise ModelFitError(
                f"{type(self).__name__}: none of the {purchases.height} purchases is of an item in the "
                f"catalogue (source {data.source!r})"
            )
        counts.sort_indices()
        self.item_ids_ = item_ids
        self.customer_ids_ = customer_ids
        self.reference_time_ = reference_time
        self.user_items_ = OverlayCSR(counts)  # fold-in replaces a customer's row, not the matrix
        self.item_seen_: np.ndarray = np.diff(counts.tocsc().indptr) > 0
        with single_blas():
            self.model_ = self._learn(counts)  # last: its presence marks the model fitted

    @abstractmethod
    def _learn(self, counts: sp.csr_matrix) -> Any:
        """Fit and return the implicit model on the customer × item (decayed) count matrix."""

    # -------------------------------------------------------------- fold-in
    def partial_fit(self, interactions: pl.DataFrame) -> Self:
        """Fold new purchases of known or new customers in without retraining item-side parameters.

        Purchases of items outside the catalogue are ignored (they cannot be scored); other events
        (views, clicks) are ignored.  Returns ``self``.

        Parameters
        ----------
        interactions
            Frame with at least ``customer_id``, ``item_id`` and ``ts`` (canonical schema).
        """
        self._check_fitted()
        missing = [c for c in ("customer_id", "item_id", "ts") if c not in interactions.columns]
        if missing:
            raise SchemaError(
                f"{type(self).__name__}.partial_fit: interactions lack required column {missing[0]!r} "
                f"(got columns {interactions.columns})",
                source="partial_fit", column=missing[0],
            )
        frame = purchases_only(conform(interactions, "interactions"))
        frame = frame.filter(self.item_ids_.index(frame["item_id"].to_list()) >= 0)  # scorable items only
        if frame.height == 0:
            return self
        self.customer_ids_ = self.customer_ids_.extend(frame["customer_id"].to_list())
        r, c, w = purchase_entries(
            frame, self.customer_ids_, self.item_ids_, weight="count",
            half_life_days=self.half_life_days, reference_time=self.reference_time_,
        )
        self.user_items_.grow(len(self.customer_ids_))
        self.user_items_.add(r, c, w, how="sum")
        rows = np.unique(r)
        with single_blas():
            self._after_absorb(rows)
        return self

    @abstractmethod
    def _after_absorb(self, rows: np.ndarray) -> None:
        """Recompute whatever depends on the (already updated) history rows ``rows``."""

    def forget(self, customer_ids: Sequence[str] | str) -> Self:
        """Erase customers: their history row, factors and id (unknown ids are ignored).

        Afterwards ``recommend`` raises ``UnknownIdError`` for them.  Item-side parameters keep the
        aggregate imprint of their past purchases until the next ``fit``.
        """
        self._check_fitted()
        ids = [customer_ids] if isinstance(customer_ids, str) else list(customer_ids)
        rows = self.customer_ids_.index(ids)
        rows = rows[rows >= 0]
        if rows.size == 0:
            return self
        keep = np.setdiff1d(np.arange(len(self.customer_ids_)), rows)
        self.customer_ids_ = IdMap(self.customer_ids_.ids[keep])
        self.user_items_.keep_rows(keep)
        self._drop_rows(keep)
        return self

    def _drop_rows(self, keep: np.ndarray) -> None:
        """Keep only customer rows ``keep`` of any per-customer state beyond ``user_items_``."""

    # ------------------------------------------------------------- similar
    def similar(
        self,
        item_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        on_unknown: OnUnknown = "raise",
    ) -> Recommendations:
        """Items most similar to each given item (the item itself excluded), best first.

        Parameters
        ----------
        item_ids
            One item id (1-d result) or a sequence (``(len(item_ids), n)`` result).
        n
            Number of similar items per query item.
        on_unknown
            ``"raise"``: an id outside the catalogue raises ``UnknownIdError``; ``"empty"``: its row
            is all padding.  Catalogue items never bought in training have no neighbours (padding).
        """
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", _is_int(n) and n >= 1)
        check_param(self, "on_unknown", on_unknown, "one of 'raise', 'empty'",
                    on_unknown in ("raise", "empty"))
        scalar = isinstance(item_ids, str)
        ids = np.array([item_ids] if scalar else list(item_ids), dtype=object)
        idx = self.item_ids_.index(ids)
        unknown = idx < 0
        if unknown.any() and on_unknown == "raise":
            raise UnknownIdError(
                f"{type(self).__name__}.similar: {int(unknown.sum())} unknown item id(s), e.g. "
                f"{ids[unknown][0]!r}; pass on_unknown='empty' to get empty rows instead"
            )
        out_idx = np.full((len(idx), n), -1, dtype=np.int64)
        out_val = np.full((len(idx), n), -np.inf, dtype=np.float32)
        query = np.flatnonzero(~unknown & self.item_seen_[np.maximum(idx, 0)])  # cold items: no neighbours
        step = _block_rows(len(self.item_ids_))
        for start in range(0, len(query), step):
            block = query[start : start + step]
            got_idx, got_val = self._similar(idx[block], n)
            out_idx[block, : got_idx.shape[1]] = got_idx
            out_val[block, : got_val.shape[1]] = got_val
        out_ids, out_scores = self._to_ids(out_idx, out_val, n)
        if scalar:
            return Recommendations(out_ids[0], out_scores[0])
        return Recommendations(out_ids, out_scores)

    @abstractmethod
    def _similar(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` neighbours (item indices, scores; -1/-inf padded) of seen items ``items``."""

    # --------------------------------------------------------- persistence
    def _base_state(self) -> dict[str, np.ndarray]:
        return {
            "item_ids": self.item_ids_.to_numpy(),
            "customer_ids": self.customer_ids_.to_numpy(),
            "item_seen": self.item_seen_,
            **csr_arrays("user_items", self.user_items_.tocsr()),
        }

    def _set_base_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.item_ids_ = IdMap.of_saved(arrays["item_ids"])
        self.customer_ids_ = IdMap.of_saved(arrays["customer_ids"])
        self.item_seen_ = arrays["item_seen"].astype(bool)
        self.user_items_ = OverlayCSR(csr_from_arrays("user_items", arrays))
        self.reference_time_ = datetime.fromisoformat(meta["reference_time"])


def _pool_positions(pool: np.ndarray, user_items: sp.csr_matrix) -> sp.csr_matrix:
    """``user_items`` with its columns mapped to positions in the sorted ``pool`` and the items outside
    it dropped: the bought-items filter of a pool-restricted top-k (what implicit's ``recommend(items=)``
    builds)."""
    cols = user_items.indices
    at = np.clip(np.searchsorted(pool, cols), 0, len(pool) - 1)
    inside = (pool[at] == cols) & (user_items.data != 0)  # (implicit drops stored zeros as well)
    n_rows = user_items.shape[0]
    row = np.repeat(np.arange(n_rows), np.diff(user_items.indptr))
    indptr = csr_from_coo(row[inside], n_rows)
    return sp.csr_matrix((np.ones(int(indptr[-1]), dtype=np.float32), at[inside], indptr),
                         shape=(n_rows, len(pool)))


class _FactorRecommender(_ImplicitRecommender):
    """Matrix-factorisation models: implicit's batch ``recommend`` on user and item factors."""

    model_: AlternatingLeastSquares | BayesianPersonalizedRanking

    def _recommend(self, rows: np.ndarray, n: int, *, exclude_bought: bool) -> tuple[np.ndarray, np.ndarray]:
        k = min(n, len(self.item_ids_))
        out_idx = np.full((len(rows), k), -1, dtype=np.int64)
        out_val = np.full((len(rows), k), -np.inf, dtype=np.float32)
        known = np.flatnonzero(rows >= 0)
        if known.size == 0:
            return out_idx, out_val
        users = rows[known]
        pool = getattr(self, "item_pool_", None)
        if pool is not None:  # score only the pool (every pool item was bought, so none is cold)
            k = min(k, len(pool))
            out_idx, out_val = out_idx[:, :k], out_val[:, :k]
            # implicit's ``recommend(items=pool)`` with the pool's factors gathered once, not per call:
            # the gather (20k x 64 floats at H&M size) was most of a one-customer request (~3 ms)
            filt = _pool_positions(pool, self.user_items_[users]) if exclude_bought else None
            ids, scores = topk(self._pool_factors(pool), self.model_.user_factors[users], k,
                               filter_query_items=filt, num_threads=_threads(len(users) * len(pool)))
            out_idx[known], out_val[known] = from_implicit(pool[ids], scores)
            return out_idx, out_val
        cold = np.flatnonzero(~self.item_seen_)
        self.model_.num_threads = _threads(len(users) * len(self.item_ids_))
        ids, scores = self.model_.recommend(
            users,
            self.user_items_[users],
            N=k,
            filter_already_liked_items=exclude_bought,
            filter_items=cold if cold.size else None,
        )
        out_idx[known], out_val[known] = from_implicit(ids, scores)
        return out_idx, out_val

    def _pool_factors(self, pool: np.ndarray) -> np.ndarray:
        """The pool's item factors, contiguous, cached per fitted implicit model and pool (fold-in moves
        customers only)."""
        cache = getattr(self, "_pool_cache", None)
        if cache is None or cache[0] is not self.model_ or cache[1] is not pool:
            cache = (self.model_, pool, np.ascontiguousarray(np.asarray(self.model_.item_factors)[pool]))
            self._pool_cache = cache
        return cache[2]

    def _item_vectors(self) -> np.ndarray:
        """Item embeddings used for ``similar`` (cosine)."""
        return np.asarray(self.model_.item_factors)

    def _unit_items(self) -> np.ndarray:
        """Unit-length item vectors, cached per fitted implicit model (fold-in never moves items)."""
        cache = getattr(self, "_unit_cache", None)
        if cache is None or cache[0] is not self.model_:
            vectors = self._item_vectors().astype(np.float32)
            norms = np.linalg.norm(vectors, axis=1)
            cache = (self.model_, vectors / np.where(norms > 0, norms, 1.0)[:, None])
            self._unit_cache = cache
        return cache[1]

    def _similar(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        unit = self._unit_items()
        scores = unit[items] @ unit.T
        scores[:, ~self.item_seen_] = -np.inf
        scores[np.arange(len(items)), items] = -np.inf
        return top_n(scores, n)

    def _set_user_factors(self, rows: np.ndarray, factors: np.ndarray) -> None:
        """Write folded-in factors for ``rows``, growing the user matrix for new customers."""
        # capacity doubling: a new customer must not copy every customer's factors (350 MB at H&M size)
        current = ensure_len(self.model_.user_factors, len(self.customer_ids_), 0)
        current[rows] = factors
        self.model_.user_factors = current
        self.model_._user_norms = None  # implicit's caches of the user side
        if hasattr(self.model_, "_XtX"):
            self.model_._XtX = None

    def _drop_rows(self, keep: np.ndarray) -> None:
        self.model_.user_factors = np.ascontiguousarray(self.model_.user_factors[keep])
        self.model_._user_norms = None
        if hasattr(self.model_, "_XtX"):
            self.model_._XtX = None

"""Collaborative filtering through the ``implicit`` library: ALS, BPR and item-item kNN.

Why these three: they answer "customers like you also bought" from purchase co-occurrence alone,
with different trade-offs — ALS (confidence-weighted matrix factorisation) is the strong default on
repeat-purchase data, BPR optimises the ranking directly, and item kNN is transparent (every score
is a sum of item–item similarities) and gives ``similar`` items for product pages.

Why wrap implicit rather than call it directly: implicit works on positions; the rest of the
engine works on string ids, time-decayed histories, fold-in of live events and erasure.  Each
generator therefore keeps its own ``IdMap`` of customers and of the *whole catalogue* (unsold
items are known but cold: never recommended, never an unknown-id error), the customer × item
history CSR ``user_items_`` (implicit needs it to filter bought items and to fold customers in),
and persists everything as arrays (``np.savez``), rebuilding the implicit object on load.

Fold-in (``partial_fit``) updates only the history rows of the customers in the new purchases and
recomputes just their vectors against the fixed item side (ALS: implicit's exact least-squares
``recalculate_user``; BPR: BPR's steepest-ascent direction, see ``BPR``; ItemKNN: nothing, scores
come straight from the history row), so the next ``recommend`` reflects a purchase without
retraining.  ``forget`` removes customers' rows and factors; the item
side (item factors, item similarities) still carries their aggregate contribution until the next
``fit`` — retrain on the erased data set to remove that too.
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
from implicit.nearest_neighbours import (
    ItemItemRecommender,
    NearestNeighboursScorer,
    bm25_weight,
    normalize,
    tfidf_weight,
)

from recsys.dataset import Dataset
from recsys.exceptions import ModelFitError, SchemaError, UnknownIdError
from recsys.idmap import IdMap
from recsys.models._implicit_util import (
    SPARSE_ROWS,
    neighbourhood_top_n,
    positive_top_n,
    bm25_item_norm,
    bm25_rows,
    csr_arrays,
    csr_from_arrays,
    from_implicit,
    purchases_only,
    single_blas,
    sparse_top_n,
)
from recsys.models._overlay import OverlayCSR, ensure_len
from recsys.models._util import sorted_ids
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

__all__ = ["ALS", "BPR", "ItemKNN", "Similarity", "Weighting"]

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
            self.model_.num_threads = _threads(len(users) * len(pool))
            ids, scores = self.model_.recommend(users, self.user_items_[users], N=k,
                                                filter_already_liked_items=exclude_bought, items=pool)
            out_idx[known], out_val[known] = from_implicit(ids, scores)
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


class ALS(_FactorRecommender):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) on confidence-weighted purchase counts.

    Why confidence weighting: a grocery household buying milk 80 times is not 80× more "liked"
    than a one-off purchase; BM25 or log scaling damps repeat counts (and BM25 also damps
    bestsellers and very broad customers) so the factors model *what* people buy together.

    Parameters
    ----------
    factors
        Latent dimensions.
    regularization
        L2 penalty on user and item factors.
    alpha
        Confidence slope: an observed (customer, item) cell gets confidence ``1 + alpha * w`` where
        ``w`` is the weighted count; unobserved cells have confidence 1 and preference 0.  Its good
        range depends on ``weighting`` (BM25 weights here are ~1–10, ``log1p`` ~0.7–4): on Complete
        Journey (last 28 days held out) 0.25–0.5 was best for BM25 and ~5 for ``"log"``.
    iterations
        ALS sweeps (each solves all users, then all items).
    weighting
        ``"bm25"`` (``implicit.nearest_neighbours.bm25_weight`` on the item × customer matrix),
        ``"log"`` (``log1p(count)``) or ``"none"`` (raw count).
    bm25_k1, bm25_b
        BM25 saturation and length-normalisation constants (``weighting="bm25"`` only).
    half_life_days
        Time decay of purchase counts (half weight every ``half_life_days`` before the last training
        purchase); ``None`` counts every purchase equally.
    random_state
        Seed of the factor initialisation.
    max_items
        Score only the ``max_items`` most bought items (``None``: the whole catalogue).  Why: scoring
        is customers × catalogue dot products; at 105k items that is most of a batch run's time, while
        the long tail rarely reaches a customer's top 40 (on the H&M-sized synthetic shop the top 20k
        of 105k items carry 84 % of purchases).  Fold-in and ``similar`` still use every item.
    """

    def __init__(
        self,
        *,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 0.5,
        iterations: int = 15,
        weighting: Weighting = "bm25",
        bm25_k1: float = 100.0,
        bm25_b: float = 0.8,
        half_life_days: float | None = None,
        random_state: int | None = 0,
        max_items: int | None = None,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.half_life_days = half_life_days
        self.random_state = random_state
        self.max_items = max_items

    def _validate_params(self) -> None:
        check_param(self, "factors", self.factors, "an int in [1, inf)",
                    _is_int(self.factors) and self.factors >= 1)
        check_param(self, "regularization", self.regularization, "a float in [0, inf)",
                    _is_real(self.regularization) and self.regularization >= 0)
        check_param(self, "alpha", self.alpha, "a float in (0, inf)", _is_real(self.alpha) and self.alpha > 0)
        check_param(self, "iterations", self.iterations, "an int in [1, inf)",
                    _is_int(self.iterations) and self.iterations >= 1)
        check_param(self, "weighting", self.weighting, "one of 'bm25', 'log', 'none'",
                    self.weighting in ("bm25", "log", "none"))
        check_param(self, "bm25_k1", self.bm25_k1, "a float in (0, inf)",
                    _is_real(self.bm25_k1) and self.bm25_k1 > 0)
        check_param(self, "bm25_b", self.bm25_b, "a float in [0, 1]",
                    _is_real(self.bm25_b) and 0 <= self.bm25_b <= 1)
        _check_half_life(self, self.half_life_days)
        check_param(self, "random_state", self.random_state, "an int in [0, inf) or None",
                    self.random_state is None or (_is_int(self.random_state) and self.random_state >= 0))
        check_param(self, "max_items", self.max_items, "an int in [1, inf) or None",
                    self.max_items is None or (_is_int(self.max_items) and self.max_items >= 1))

    def _confidence(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Confidence ``1 + alpha * w`` on the stored cells of ``counts`` (rows = customers).

        Row-local, so fold-in re-weights just the changed rows; for BM25 the item normalisation
        is the one stored at fit (``bm25_rows`` equals implicit's ``bm25_weight`` on the fit matrix).
        """
        if self.weighting == "bm25":
            w = bm25_rows(counts, self.bm25_item_norm_, float(self.bm25_k1))
        else:
            w = counts.astype(np.float64)
            if self.weighting == "log":
                w.data = np.log1p(w.data)
        return self._to_confidence(w)

    def _to_confidence(self, w: sp.csr_matrix) -> sp.csr_matrix:
        # BM25's idf goes ≤ 0 for a customer who bought (nearly) the whole catalogue: clip, so every
        # purchase stays a positive signal (implicit reads negative confidence as a dislike).
        w = w.tocsr()
        data = 1.0 + float(self.alpha) * np.clip(w.data, 0.0, None)
        conf = sp.csr_matrix((data.astype(np.float32), w.indices, w.indptr), shape=w.shape)
        conf.sort_indices()
        return conf

    def _learn(self, counts: sp.csr_matrix) -> AlternatingLeastSquares:
        self.bm25_item_norm_ = bm25_item_norm(counts, float(self.bm25_b))
        if self.weighting == "bm25":  # implicit's own weighting on the item × customer matrix
            conf = self._to_confidence(bm25_weight(counts.T, K1=float(self.bm25_k1), B=float(self.bm25_b)).T)
        else:
            conf = self._confidence(counts)
        model = self._new_model()
        model.num_threads = _threads(conf.nnz)
        model.fit(conf, show_progress=False)
        # Conjugate-gradient steps only approximate each solve, so items nobody bought need not end
        # at exactly zero: zero them (they are filtered from recommendations and ``similar``).
        model.item_factors[~self.item_seen_] = 0.0
        model._item_norms = None
        model._YtY = None
        self.item_pool_ = self._pool(counts)
        return model

    def _pool(self, counts: sp.csr_matrix) -> np.ndarray | None:
        """The ``max_items`` items with most (decayed) purchases, sorted by index; ``None`` = all seen."""
        if self.max_items is None or self.max_items >= int(self.item_seen_.sum()):
            return None
        sold = np.asarray(counts.sum(axis=0)).ravel()
        top = np.argsort(-sold, kind="stable")[: int(self.max_items)]
        return np.sort(top[sold[top] > 0]).astype(np.int32)

    def _new_model(self) -> AlternatingLeastSquares:
        # alpha is applied in ``_confidence`` (one place for fit and fold-in), so implicit's is 1.
        return AlternatingLeastSquares(
            factors=int(self.factors),
            regularization=float(self.regularization),
            alpha=1.0,
            iterations=int(self.iterations),
            random_state=self.random_state,
            num_threads=1,
        )

    def _after_absorb(self, rows: np.ndarray) -> None:
        if rows.size == 0:
            return
        conf = self._confidence(self.user_items_[rows])
        self.model_.num_threads = _threads(conf.nnz + len(rows) * int(self.factors) ** 2)
        factors = self.model_.recalculate_user(rows, conf)
        self._set_user_factors(rows, factors)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {
            **self._base_state(),
            "user_factors": np.asarray(self.model_.user_factors)[: len(self.customer_ids_)],
            "item_factors": np.asarray(self.model_.item_factors),
            "bm25_item_norm": self.bm25_item_norm_,
        }
        pool: np.ndarray | None = getattr(self, "item_pool_", None)
        if pool is not None:
            arrays["item_pool"] = pool
        return arrays, {"reference_time": self.reference_time_.isoformat()}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._set_base_state(arrays, meta)
        self.bm25_item_norm_ = arrays["bm25_item_norm"]
        self.item_pool_ = arrays.get("item_pool")
        with single_blas():
            model = self._new_model()
        model.factors = int(arrays["item_factors"].shape[1])
        model.user_factors = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        model.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        self.model_ = model


class BPR(_FactorRecommender):
    """Bayesian Personalised Ranking (Rendle et al. 2009): factors trained to rank bought items
    above sampled unbought ones.

    Why next to ALS: it optimises the ranking directly and learns an item bias (popularity), which
    sometimes suits sparse, one-off-purchase shops better than ALS's squared loss.  Purchases are
    binary to BPR (counts do not matter).

    Fold-in: BPR has no closed-form user update, and a least-squares solve against BPR item
    factors does not work (BPR only learns score *differences*; on the synthetic shop the solve
    gives every customer the same list).  A folded-in customer's vector is instead the direction
    of steepest ascent of BPR's objective at zero — mean vector of the items they bought minus
    the mean vector of BPR's negatives (items weighted by popularity, as implicit samples them) —
    rescaled to the median norm of the trained customer vectors so it sits on the same scale as
    the item biases it is added to.  On the synthetic shop it points within ~14° (median) of the
    trained vector of the same customer.

    Parameters
    ----------
    factors
        Latent dimensions (implicit adds one more for the item bias).
    learning_rate
        SGD step size.
    regularization
        L2 penalty.
    iterations
        Epochs; each samples as many (customer, bought, unbought) triples as there are distinct
        bought (customer, item) pairs, so a customer gets about as many updates per epoch as they
        bought distinct items.  ``"auto"`` picks the epochs that give the average customer
        ~7,000 updates, clipped to [10, 100]: a fixed count cannot suit both a fashion shop (~7
        distinct items per customer: 100 epochs are needed, 20 under-train) and grocery data
        (~350 per customer on Complete Journey: 10–30 epochs rank held-out purchases best, hit
        rate@10 0.26 vs 0.12 at 100 epochs, and 100 single-threaded epochs take ~50 s alone).
    random_state
        Seed of initialisation and sampling.  Training runs single-threaded because implicit's
        multi-threaded BPR updates shared factors without locks, which is not reproducible.
    """

    half_life_days = None  # BPR reads purchases as binary: time decay would change nothing
    #: SGD updates the average customer should get when ``iterations="auto"`` (≈ 20 epochs on
    #: Complete Journey, 100 on the synthetic shop).
    _AUTO_UPDATES_PER_CUSTOMER: ClassVar[float] = 7_000.0

    def __init__(
        self,
        *,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int | Literal["auto"] = "auto",
        random_state: int | None = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state

    def _validate_params(self) -> None:
        check_param(self, "factors", self.factors, "an int in [1, inf)",
                    _is_int(self.factors) and self.factors >= 1)
        check_param(self, "learning_rate", self.learning_rate, "a float in (0, inf)",
                    _is_real(self.learning_rate) and self.learning_rate > 0)
        check_param(self, "regularization", self.regularization, "a float in [0, inf)",
                    _is_real(self.regularization) and self.regularization >= 0)
        check_param(self, "iterations", self.iterations, "an int in [1, inf) or 'auto'",
                    self.iterations == "auto" or (_is_int(self.iterations) and self.iterations >= 1))
        check_param(self, "random_state", self.random_state, "an int in [0, inf) or None",
                    self.random_state is None or (_is_int(self.random_state) and self.random_state >= 0))

    def _epochs(self, binary: sp.csr_matrix) -> int:
        """Epochs to train: ``iterations``, or the ``"auto"`` rule (see the class docstring)."""
        if self.iterations != "auto":
            return int(self.iterations)
        per_customer = binary.nnz / max(binary.shape[0], 1)
        return int(np.clip(round(self._AUTO_UPDATES_PER_CUSTOMER / per_customer), 10, 100))

    def _learn(self, counts: sp.csr_matrix) -> BayesianPersonalizedRanking:
        binary = counts.copy()
        binary.data[:] = 1.0
        self.iterations_ = self._epochs(binary)
        model = self._new_model(self.iterations_)
        model.fit(binary, show_progress=False)
        norms = np.linalg.norm(model.user_factors[:, :-1], axis=1)
        self.fold_norm_ = float(np.median(norms)) if norms.size else 1.0
        popularity = np.asarray(binary.sum(axis=0), dtype=np.float64).ravel()
        item_vectors = np.asarray(model.item_factors, np.float64)[:, :-1]
        self.negative_mean_ = (popularity / popularity.sum()) @ item_vectors
        return model

    def _new_model(self, epochs: int) -> BayesianPersonalizedRanking:
        return BayesianPersonalizedRanking(
            factors=int(self.factors),
            learning_rate=float(self.learning_rate),
            regularization=float(self.regularization),
            iterations=epochs,
            num_threads=1,
            random_state=self.random_state,
        )

    def _item_vectors(self) -> np.ndarray:
        return np.asarray(self.model_.item_factors)[:, :-1]  # without the bias (popularity) column

    def _after_absorb(self, rows: np.ndarray) -> None:
        if rows.size == 0:
            return
        bought = self.user_items_[rows].astype(np.float64)
        bought.data[:] = 1.0
        cols = np.unique(bought.indices)  # only the bought items' vectors: O(purchases), not O(catalogue)
        items = np.asarray(self.model_.item_factors[cols, :-1], dtype=np.float64)
        x = (bought[:, cols] @ items) / np.asarray(bought.sum(axis=1)) - self.negative_mean_
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x * (self.fold_norm_ / np.where(norms > 0, norms, 1.0))
        factors = np.hstack([x, np.ones((len(rows), 1))]).astype(self.model_.user_factors.dtype)
        self._set_user_factors(rows, factors)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {
            **self._base_state(),
            "user_factors": np.asarray(self.model_.user_factors)[: len(self.customer_ids_)],
            "item_factors": np.asarray(self.model_.item_factors),
            "negative_mean": self.negative_mean_,
        }
        meta = {"reference_time": self.reference_time_.isoformat(), "fold_norm": self.fold_norm_,
                "iterations": self.iterations_}
        return arrays, meta

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._set_base_state(arrays, meta)
        self.fold_norm_ = float(meta["fold_norm"])
        self.iterations_ = int(meta["iterations"])
        self.negative_mean_ = arrays["negative_mean"]
        model = self._new_model(self.iterations_)
        model.factors = int(arrays["item_factors"].shape[1]) - 1
        model.user_factors = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        model.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        self.model_ = model


class ItemKNN(_ImplicitRecommender):
    """Item-item nearest neighbours: a customer's score for an item is the sum, over what they
    bought (weighted by decayed count), of that item's similarity to it.

    Why: every recommendation is explainable by the bought items that led to it, fold-in is free
    (only the history row changes) and ``similar`` gives "customers who bought this also bought"
    for product pages.

    The similarity matrix is implicit's ``all_pairs_knn`` on the weighting of
    ``CosineRecommender`` / ``BM25Recommender`` (K1=1.2, B=0.75) / ``TFIDFRecommender``; the
    weighting is applied here and the base ``ItemItemRecommender`` fitted on it, because those
    subclasses hand a COO matrix to ``all_pairs_knn`` and so emit implicit's CSR-conversion
    ``ParameterWarning``.  Scoring is a sparse history × similarity product per block of customers
    and a dense top-n, rather than implicit's per-customer Python loop; this also keeps bought
    items out when asked (implicit 0.7.3's scorer returns them with score 0).

    Parameters
    ----------
    k
        Neighbours kept per item (the item itself counts as one).
    similarity
        ``"cosine"``, ``"bm25"`` or ``"tfidf"``.
    half_life_days
        Time decay of purchase counts, as in ``ALS``; ``None`` counts every purchase equally.
    """

    model_: ItemItemRecommender

    #: BM25 constants of implicit's ``BM25Recommender``.
    _BM25_K1: ClassVar[float] = 1.2
    _BM25_B: ClassVar[float] = 0.75

    def __init__(
        self, *, k: int = 100, similarity: Similarity = "cosine", half_life_days: float | None = None
    ) -> None:
        self.k = k
        self.similarity = similarity
        self.half_life_days = half_life_days

    def _validate_params(self) -> None:
        check_param(self, "k", self.k, "an int in [1, inf)", _is_int(self.k) and self.k >= 1)
        check_param(self, "similarity", self.similarity, "one of 'cosine', 'bm25', 'tfidf'",
                    self.similarity in ("cosine", "bm25", "tfidf"))
        _check_half_life(self, self.half_life_days)

    def _learn(self, counts: sp.csr_matrix) -> ItemItemRecommender:
        item_users = counts.T
        if self.similarity == "cosine":
            weighted = normalize(item_users).T
        elif self.similarity == "tfidf":
            weighted = normalize(tfidf_weight(item_users)).T
        else:
            weighted = bm25_weight(item_users, K1=self._BM25_K1, B=self._BM25_B).T
        weighted = weighted.tocsr()
        weighted.sort_indices()
        model = ItemItemRecommender(K=int(self.k), num_threads=_threads(weighted.nnz))
        model.fit(weighted, show_progress=False)
        return model

    def _recommend(self, rows: np.ndarray, n: int, *, exclude_bought: bool) -> tuple[np.ndarray, np.ndarray]:
        k = min(n, len(self.item_ids_))
        out_idx = np.full((len(rows), k), -1, dtype=np.int64)
        out_val = np.full((len(rows), k), -np.inf, dtype=np.float32)
        known = np.flatnonzero(rows >= 0)
        if 0 < len(known) <= SPARSE_ROWS:  # the per-request path
            history = self.user_items_[rows[known]]
            out_idx[known], out_val[known] = positive_top_n(
                history @ self.model_.similarity, k, history if exclude_bought else None)
            return out_idx, out_val
        history = self.user_items_[rows[known]]
        out_idx[known], out_val[known] = neighbourhood_top_n(
            history, self.model_.similarity, k, exclude_bought=exclude_bought, dense_cells=_SCORE_BLOCK_CELLS)
        return out_idx, out_val

    def _after_absorb(self, rows: np.ndarray) -> None:
        """Nothing to solve: scores are computed from the (already updated) history rows."""

    def _similar(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        sim = self.model_.similarity[items].tocoo()
        keep = (sim.col != items[sim.row]) & (sim.data > 0)
        sim = sp.csr_matrix((sim.data[keep], (sim.row[keep], sim.col[keep])), shape=sim.shape)
        return sparse_top_n(sim, n)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {**self._base_state(), **csr_arrays("similarity", self.model_.similarity)}
        return arrays, {"reference_time": self.reference_time_.isoformat()}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._set_base_state(arrays, meta)
        model = ItemItemRecommender(K=int(self.k), num_threads=1)
        model.similarity = csr_from_arrays("similarity", arrays)
        model.scorer = NearestNeighboursScorer(model.similarity)
        self.model_ = model

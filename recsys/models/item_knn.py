"""Item-item kNN through implicit: transparent scores (sums of item–item similarities) and
``similar`` items for product pages."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import (
    ItemItemRecommender,
    NearestNeighboursScorer,
    bm25_weight,
    normalize,
    tfidf_weight,
)

from recsys.models._implicit_base import (
    _ImplicitRecommender,
    Similarity,
    _check_half_life,
    _is_int,
    _threads,
    _SCORE_BLOCK_CELLS,
)
from recsys.models._implicit_util import (
    SPARSE_ROWS,
    neighbourhood_top_n,
    positive_top_n,
    csr_arrays,
    csr_from_arrays,
    sparse_top_n,
)
from recsys.models.base import check_param

__all__ = ["ItemKNN"]


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

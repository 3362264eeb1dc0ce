"""TIFU-KNN: a customer's own time-decayed item frequencies, blended with those of similar customers.

Why: Hu et al. (SIGIR 2020, "Modeling Personalized Item Frequency Information for Next-basket
Recommendation") showed that this simple method beats most neural next-basket models, and the NBR
"reality check" studies confirm it; it is the strongest simple baseline a grocery ranker must beat,
and a candidate generator that reaches items the customer never bought (through neighbours).

Each customer's baskets, newest first, are cut into groups of ``group_size``; baskets decay by
``within_decay`` inside a group and groups by ``group_decay`` (``recsys.models._tifu``).  The score
of item ``i`` for customer ``u`` is ``alpha · u[i] + (1 − alpha) · mean over the n_neighbors nearest
customers v of v[i]``.  There is no wall-clock decay: only the order of baskets matters.

Scale: vectors are sparse rows (customers × items CSR); neighbours are found at ``fit`` among a pool
of the ``neighbor_pool`` customers with the most baskets, a block of query × pool cells at a time, and
stored (customers × ``n_neighbors`` int32); ``recommend`` works on blocks of customers × items.
Fold-in: ``partial_fit`` recomputes only the touched customers' vectors and neighbours, into an
*overlay* (a dict read before the base arrays), so one new basket costs that customer's history plus
one pass over the pool — never a pass over all customers.  The overlay is merged into the base
arrays when it holds more than 1 % of the customers.  A folded-in customer's new vector is used
when others have them as neighbour, but the pool itself is as of the last merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys._arrays import in_sorted
from recsys.dataset import Dataset
from recsys.idmap import IdMap
from recsys.models._tifu import (
    BLOCK_CELLS, Baskets, Pool, add_baskets, basket_key, basket_table, customer_vectors, nearest, on_two_threads,
    strongest,
)
from recsys.models._implicit_util import _DENSE_SHARE, _dense_route, _sparse_route
from recsys.models._util import gather_rows, index_of, purchases_of, resolve_rows, sorted_ids, to_datetime
from recsys.models.base import OnUnknown, Recommender, check_param

__all__ = ["ExplainedReasons", "TIFUKNN"]

_NAT = np.iinfo(np.int64).min
#: Marks a customer whose neighbours are not searched yet (``search_neighbours="on_query"``).
_UNSEARCHED = -2
#: The overlay is merged into the base arrays beyond this share of the customers (and this many).
_MERGE_SHARE, _MERGE_MIN = 0.01, 64


class ExplainedReasons(NamedTuple):
    """``base.Explained`` plus a reason type per entry: TIFU-KNN's suggestions are of two kinds (the
    customer's own items, similar customers' items), where other generators have one class reason."""

    row: np.ndarray
    rank: np.ndarray
    item_id: np.ndarray
    score: np.ndarray
    source_item_id: np.ndarray  # the item itself for an own item, None otherwise
    source_us: np.ndarray  # int64 µs of the customer's last purchase of it; int64 minimum when none
    reason: np.ndarray  # object array of str


class _Folded(NamedTuple):
    """One folded-in customer's state in the overlay."""

    baskets: list[tuple[int, np.ndarray]]  # (ts µs, sorted items), oldest first
    last_key: str
    items: np.ndarray  # int32, sorted
    weight: np.ndarray  # float32
    last: np.ndarray  # int64 µs
    neighbours: np.ndarray  # int32 (n_neighbors,), -1 padded


class TIFUKNN(Recommender):
    """Personalised item frequency with within- and across-group decay, blended with neighbours.

    Parameters
    ----------
    group_size
        Baskets per group (the paper's ``m``).
    within_decay, group_decay
        Decay per basket inside a group (``r_b``) and per group (``r_g``), both in (0, 1].
    n_neighbors
        Nearest customers averaged (the paper's ``k``).
    alpha
        Weight of the customer's own vector; ``1 - alpha`` goes to the neighbours' mean.
    metric
        ``euclidean`` (the paper's) or ``cosine`` distance between customer vectors.
    neighbor_pool
        Neighbours are searched among this many customers with the most baskets (``None``: all).
        Bounds the fit's cost at ``customers × pool`` cells and a fold-in's at one pass over the pool.
    neighbor_items
        Each neighbour contributes its this many strongest items to the mean (``None``: all; the
        customer's own vector is always whole).  Not in the paper: on Complete Journey a neighbour
        holds ~670 items and the mean ~38k per customer; keeping 150 changed validation MAP@12 by
        < 0.0001 and halved ``recommend``'s time.
    search_neighbours
        ``"at_fit"``: every customer's neighbours are searched by ``fit``.  ``"on_query"``: a customer's
        are searched the first time it is recommended for, and kept; ``save``, ``forget``, fold-in and
        ``with_blend`` search the rest first.  The lists are the same either way.  Why: a ranker's
        label window or an evaluation asks for a sample of the customers (20k of H&M's 1.4M), and the
        search is most of a fit (91 % at H&M size); see ``window_params``.
    """

    reason: ClassVar[str] = "similar_customers"
    #: The reason of a candidate the customer bought before (its source is the item itself).
    reason_bought: ClassVar[str] = "buy_again"
    #: Parameters for a fit that will be asked about a sample of customers only (a ranker window, an
    #: evaluation): search neighbours for the customers asked about, not for all.
    window_params: ClassVar[dict[str, Any]] = {"search_neighbours": "on_query"}
    #: After a fold-in merge, the pool as it was at fit: customers not searched yet are searched among it.
    _search_pool: Pool | None = None

    def __init__(
        self,
        *,
        group_size: int = 7,
        within_decay: float = 0.9,
        group_decay: float = 0.7,
        n_neighbors: int = 300,
        alpha: float = 0.7,
        metric: Literal["euclidean", "cosine"] = "euclidean",
        neighbor_pool: int | None = 20_000,
        neighbor_items: int | None = 200,
        search_neighbours: Literal["at_fit", "on_query"] = "at_fit",
    ) -> None:
        self.group_size = group_size
        self.within_decay = within_decay
        self.group_decay = group_decay
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.metric = metric
        self.neighbor_pool = neighbor_pool
        self.neighbor_items = neighbor_items
        self.search_neighbours = search_neighbours

    def _validate_params(self) -> None:
        def num(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

        def count(v: Any) -> bool:
            return bool(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1)

        check_param(self, "group_size", self.group_size, "an int in [1, inf)", count(self.group_size))
        for name in ("within_decay", "group_decay"):
            v = getattr(self, name)
            check_param(self, name, v, "a float in (0, 1]", num(v) and 0 < v <= 1)
        check_param(self, "n_neighbors", self.n_neighbors, "an int in [1, inf)", count(self.n_neighbors))
        check_param(self, "alpha", self.alpha, "a float in [0, 1]", num(self.alpha) and 0 <= self.alpha <= 1)
        check_param(self, "metric", self.metric, "one of 'euclidean', 'cosine'", self.metric in ("euclidean", "cosine"))
        pool = self.neighbor_pool
        check_param(self, "neighbor_pool", pool, "an int in [1, inf) or None", pool is None or count(pool))
        cap = self.neighbor_items
        check_param(self, "neighbor_items", cap, "an int in [1, inf) or None", cap is None or count(cap))
        check_param(self, "search_neighbours", self.search_neighbours, "one of 'at_fit', 'on_query'",
                    self.search_neighbours in ("at_fit", "on_query"))

    # ------------------------------------------------------------------------------------ fit
    def _fit(self, data: Dataset) -> None:
        p = purchases_of(data.interactions)
        self.item_ids_ = sorted_ids(data.items["item_id"], p["item_id"])
        self.customer_ids_ = sorted_ids(p["customer_id"])
        c = index_of(p["customer_id"], self.customer_ids_)
        i = index_of(p["item_id"], self.item_ids_)
        t = p["ts"].dt.epoch("us").to_numpy().astype(np.int64)
        key = p.select(basket_key(p)).to_series()
        ok = i >= 0
        baskets, last_key = basket_table(c[ok], i[ok], t[ok], key.filter(pl.Series(ok)), len(self.customer_ids_))
        self._set_base(baskets, last_key.astype(str), None)

    def refit_like(self, fitted: TIFUKNN) -> TIFUKNN:
        """Fit on the same purchases as ``fitted`` (its baskets, no fold-in pending), skipping the
        basket table: what a parameter search needs (a third of a fit's time on Complete Journey)."""
        self._validate_params()
        fitted._check_fitted()
        fitted._merge()
        self.item_ids_, self.customer_ids_ = fitted.item_ids_, fitted.customer_ids_
        self._set_base(fitted.baskets_, fitted.last_key_, None)
        return self

    def with_blend(self, *, n_neighbors: int, alpha: float) -> TIFUKNN:
        """This fitted model with its ``n_neighbors`` nearest neighbours only and another ``alpha``, sharing
        every array (no refit): neighbours are stored nearest first, so fewer is a prefix."""
        self._check_fitted()
        self._merge()
        self._search_missing(None)
        check_param(self, "n_neighbors", n_neighbors, f"an int in [1, {self.n_neighbors}] (at most the fitted)",
                    isinstance(n_neighbors, (int, np.integer)) and 1 <= n_neighbors <= self.n_neighbors)
        out = type(self)(**{**self.get_params(), "n_neighbors": n_neighbors, "alpha": alpha})
        out._validate_params()
        for name, value in vars(self).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(out, name, value)
        out.neighbours_ = self.neighbours_[:, :n_neighbors]
        out._reset_overlay()
        out._cache.update({k: v for k, v in self._cache.items() if k in ("matrix", "neighbour_matrix", "pool")})
        return out

    def _set_base(self, baskets: Baskets, last_key: np.ndarray, neighbours: np.ndarray | None,
                  *, keep_search_pool: bool = False) -> None:
        """Install base arrays: vectors from ``baskets``, and neighbours (searched when ``None``).

        ``keep_search_pool`` (a merge): customers not searched yet are later searched among the pool as
        it was at fit, not as merged fold-ins changed it — so the answer never depends on whether they
        were asked before or after a merge, in this worker or another."""
        frozen = self._search_pool if keep_search_pool else None
        self._reset_overlay()
        self._search_pool = frozen
        self.baskets_, self.last_key_ = baskets, last_key
        self.vec_indptr_, self.vec_items_, self.vec_w_, self.vec_last_ = customer_vectors(
            baskets, len(self.item_ids_), group_size=self.group_size, within_decay=self.within_decay,
            group_decay=self.group_decay)
        n = baskets.n_customers
        counts = np.diff(baskets.bk_indptr)
        size = n if self.neighbor_pool is None else min(n, self.neighbor_pool)
        self.pool_ = np.sort(np.argsort(-counts, kind="stable")[:size]).astype(np.int64)
        if neighbours is None:
            neighbours = np.full((n, self.n_neighbors), _UNSEARCHED, dtype=np.int32)
            self.neighbours_ = neighbours
            if self.search_neighbours == "at_fit":
                self._search_missing(None)
        self.neighbours_ = neighbours

    def _search_missing(self, rows: np.ndarray | None) -> None:
        """Search the neighbours of those base ``rows`` (all when ``None``) not searched yet."""
        if self.neighbours_.shape[1] == 0:
            return
        if rows is None:
            todo = np.flatnonzero(self.neighbours_[:, 0] == _UNSEARCHED)
        else:
            rows = rows[(rows >= 0) & (rows < len(self.neighbours_))]
            todo = np.unique(rows[self.neighbours_[rows, 0] == _UNSEARCHED])
        pool = self._search_pool if self._search_pool is not None else self._pool()
        if len(todo) == len(self.neighbours_):  # all: no copy of the vectors
            self.neighbours_[:] = nearest(self._matrix(), todo, pool, self.n_neighbors, self.metric)
        elif len(todo):
            self.neighbours_[todo] = nearest(self._matrix()[todo], todo, pool, self.n_neighbors, self.metric)

    def _reset_overlay(self) -> None:
        self._overlay: dict[int, _Folded] = {}
        self._new_ids: dict[str, int] = {}
        self._cache: dict[str, Any] = {}

    def _matrix(self) -> sp.csr_matrix:
        """The base vectors as a CSR matrix (shares the arrays)."""
        if "matrix" not in self._cache:
            shape = (len(self.vec_indptr_) - 1, len(self.item_ids_))
            self._cache["matrix"] = sp.csr_matrix((self.vec_w_, self.vec_items_, self.vec_indptr_), shape=shape)
        return self._cache["matrix"]

    def _neighbour_matrix(self) -> sp.csr_matrix:
        """The base vectors as neighbours see them: each customer's ``neighbor_items`` strongest items.

        Only pool customers are ever anyone's neighbours, so only their rows are filled (the others are
        empty): at H&M size ranking 5k customers' items instead of 1.4M customers' took the first
        request of every process from ~18 s to well under a second."""
        if "neighbour_matrix" not in self._cache:
            matrix = self._matrix()
            pool = self.pool_[self.pool_ < matrix.shape[0]]
            top = strongest(matrix[pool], self.neighbor_items)
            counts = np.zeros(matrix.shape[0], dtype=np.int64)
            counts[pool] = np.diff(top.indptr)
            indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            self._cache["neighbour_matrix"] = sp.csr_matrix((top.data, top.indices, indptr), shape=matrix.shape)
        return self._cache["neighbour_matrix"]

    def _pool(self) -> Pool:
        if "pool" not in self._cache:
            self._cache["pool"] = Pool(self.pool_, self._matrix()[self.pool_])
        return self._cache["pool"]

    # ---------------------------------------------------------------------------------- query
    @property
    def _n_base(self) -> int:
        return len(self.vec_indptr_) - 1

    def _customer_rows(self, ids: np.ndarray) -> np.ndarray:
        rows = self.customer_ids_.index(ids)
        if self._new_ids and (rows < 0).any():
            miss = np.flatnonzero(rows < 0)
            rows[miss] = [self._new_ids.get(str(ids[j]), -1) for j in miss]
        return rows

    def _own(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """(local, item, weight, last) of the customers' own vectors, sorted by (local, item)."""
        folded = np.array([r in self._overlay for r in rows.tolist()], dtype=bool)
        base = np.where(folded | (rows >= self._n_base), -1, rows)
        local, pos = gather_rows(self.vec_indptr_, base)
        parts = [(local, self.vec_items_[pos].astype(np.int64), self.vec_w_[pos], self.vec_last_[pos])]
        for j in np.flatnonzero(folded):
            f = self._overlay[int(rows[j])]
            parts.append((np.full(len(f.items), j, np.int64), f.items.astype(np.int64), f.weight, f.last))
        out = tuple(np.concatenate(x) for x in zip(*parts, strict=True))
        if len(parts) > 1:
            order = np.lexsort((out[1], out[0]))
            out = tuple(x[order] for x in out)
        return out

    def _neighbours(self, rows: np.ndarray) -> np.ndarray:
        self._search_missing(rows)
        out = np.full((len(rows), self.n_neighbors), -1, dtype=np.int32)
        base = (rows >= 0) & (rows < self._n_base)
        out[base] = self.neighbours_[rows[base]]
        for j, r in enumerate(rows.tolist()):
            f = self._overlay.get(r)
            if f is not None:
                out[j] = f.neighbours
        return out

    def _overlay_matrix(self) -> tuple[np.ndarray, sp.csr_matrix]:
        """Folded-in pool customers (sorted rows) and their vectors, rebuilt only after one of them folds in.

        Only pool customers are ever neighbours: the service folds in customers all day, and rebuilding
        every folded customer's vector after each event grew with the day's events."""
        if "overlay" not in self._cache:
            rows = np.array(sorted(self._overlay), dtype=np.int64)
            rows = rows[in_sorted(rows, self.pool_)]
            fs = [self._overlay[int(r)] for r in rows]
            counts = np.array([len(f.items) for f in fs], dtype=np.int64)
            m = sp.csr_matrix(
                (np.concatenate([f.weight for f in fs]) if fs else np.zeros(0, np.float32),
                 np.concatenate([f.items for f in fs]) if fs else np.zeros(0, np.int32),
                 np.concatenate([[0], np.cumsum(counts)])), shape=(len(fs), len(self.item_ids_)))
            self._cache["overlay"] = (rows, strongest(m, self.neighbor_items))
        return self._cache["overlay"]

    def _block(self, rows: np.ndarray, n: int, exclude_bought: bool) -> tuple[np.ndarray, ...]:
        """Top ``n`` (item index, score) of one block of customers, and their own (key, last).

        The scores are one sparse sum (the neighbours' mean, then the customer's own vector), ranked
        by the route its density asks for (``_implicit_util.neighbourhood_top_n``'s rule): on grocery
        data the neighbours' mean touches tens of thousands of items per customer, where one partial
        sort of a dense block row wins; at shop scale (a 105k-article catalogue) a customer's
        neighbours touch a few thousand, and a dense customers × catalogue block would make the cost
        grow with customers × items.  Both routes give the same lists (ties by item index); items
        nobody proposed score 0 and come back as padding (every proposed item scores > 0).
        """
        b, n_items = len(rows), len(self.item_ids_)
        local, item, w, last = self._own(rows)
        scores = sp.csr_matrix((b, n_items), dtype=np.float32)
        nb = self._neighbours(rows)
        valid = nb >= 0
        count = valid.sum(axis=1)
        if self.alpha < 1 and valid.any():
            share = np.where(count > 0, (1.0 - self.alpha) / np.maximum(count, 1), 0.0).astype(np.float32)
            r, k = np.nonzero(valid)
            col = nb[r, k].astype(np.int64)
            ov_rows, ov_matrix = self._overlay_matrix()
            at = np.minimum(np.searchsorted(ov_rows, col), max(len(ov_rows) - 1, 0))
            in_ov = (ov_rows[at] == col) if len(ov_rows) else np.zeros(len(col), dtype=bool)
            a = sp.csr_matrix((share[r[~in_ov]], (r[~in_ov], col[~in_ov])), shape=(b, self._n_base))
            scores = (a @ self._neighbour_matrix()).tocsr()
            if in_ov.any():
                a_ov = sp.csr_matrix((share[r[in_ov]], (r[in_ov], at[in_ov])), shape=(b, len(ov_rows)))
                scores = (scores + a_ov @ ov_matrix).tocsr()
        own = sp.csr_matrix((np.float32(self.alpha) * w, (local, item)), shape=(b, n_items), dtype=np.float32)
        # exclude_bought: the customer's own items out (their vector is then not added at all)
        scores = sp.csr_matrix(scores if exclude_bought else scores + own, dtype=np.float32)
        bought = own if exclude_bought else None
        if scores.nnz < _DENSE_SHARE * b * n_items:
            idx, top = _sparse_route(scores, bought, n)
        else:  # dense blocks of at most BLOCK_CELLS cells
            step = max(1, BLOCK_CELLS // max(n_items, 1))
            parts = [_dense_route(scores[lo:lo + step], None if bought is None else bought[lo:lo + step], n)
                     for lo in range(0, b, step)]
            idx, top = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return idx, top, local * n_items + item, last

    def _blocks(self, rows: np.ndarray, n: int, exclude_bought: bool) -> list[tuple[int, tuple[np.ndarray, ...]]]:
        """Blocks of customers, ``on_two_threads`` when there are several."""
        # a block's sparse scores hold at most ~BLOCK_CELLS entries: each customer's at most the
        # catalogue, or the entries of its neighbours' vectors (and its own)
        matrix = self._neighbour_matrix()  # (only the pool's rows are filled)
        reach = (self.n_neighbors * matrix.nnz / max(len(self.pool_), 1)
                 + self.vec_indptr_[-1] / max(matrix.shape[0], 1))
        step = max(1, int(BLOCK_CELLS // max(min(len(self.item_ids_), 2 * reach), 1)))
        starts = range(0, len(rows), step)
        self._overlay_matrix()  # built once here, not raced for by the threads
        self._search_missing(rows)  # likewise: one search (itself on two threads) for the whole request
        done = on_two_threads(lambda lo: self._block(rows[lo:lo + step], n, exclude_bought), starts)
        return list(zip(starts, done, strict=True))

    def _recommend(self, rows: np.ndarray, n: int, *, exclude_bought: bool) -> tuple[np.ndarray, np.ndarray]:
        blocks = self._blocks(rows, n, exclude_bought)
        if not blocks:
            return np.full((0, n), -1, np.int64), np.full((0, n), -np.inf, np.float32)
        return (np.concatenate([blk[0] for _, blk in blocks]), np.concatenate([blk[1] for _, blk in blocks]))

    def explain_arrays(
        self, customer_ids: str | Sequence[str] | np.ndarray, n: int = 10, *, exclude_bought: bool = False,
        on_unknown: OnUnknown = "raise",
    ) -> ExplainedReasons:
        """The top ``n`` as arrays with their explanation: an item the customer bought is a buy-again
        suggestion whose source is the item itself, bought last on ``source_us``; any other item is
        there because similar customers bought it (no source; ``source_us`` is the int64 minimum)."""
        b, rank, items, scores, bought, last = self._explained(customer_ids, n, exclude_bought, on_unknown)
        ids = self.item_ids_.ids[items].astype(str).astype(object)
        source = ids.copy()
        source[~bought] = None
        reason = np.where(bought, self.reason_bought, self.reason).astype(object)
        return ExplainedReasons(b.astype(np.int64), (rank + 1).astype(np.int32), ids, scores.astype(np.float32),
                                source, last.astype(np.int64), reason)

    def _explained(self, customer_ids: str | Sequence[str] | np.ndarray, n: int, exclude_bought: bool,
                   on_unknown: OnUnknown) -> list[np.ndarray]:
        """``explain_arrays``'s entries as index arrays: (row, rank, item, score, bought, last µs)."""
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        _, rows = resolve_rows(self, customer_ids, on_unknown)
        parts = []
        n_items = max(len(self.item_ids_), 1)
        for lo, (idx, scores, own_key, own_last) in self._blocks(rows, n, exclude_bought):
            b, rank = np.nonzero(idx >= 0)
            items = idx[b, rank]
            key = b * n_items + items
            at = np.minimum(np.searchsorted(own_key, key), max(len(own_key) - 1, 0))
            bought = (own_key[at] == key) if len(own_key) else np.zeros(len(key), dtype=bool)
            last = np.where(bought, own_last[at] if len(own_last) else _NAT, _NAT)
            parts.append((b + lo, rank, items, scores[b, rank], bought, last))
        if not parts:  # no customers asked
            parts = [(np.zeros(0, np.int64),) * 3 + (np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, np.int64))]
        return [np.concatenate(x) for x in zip(*parts, strict=True)]

    def recommend_with_sources(
        self, customer_ids: str | Sequence[str] | np.ndarray, n: int = 10, *, exclude_bought: bool = False,
        on_unknown: OnUnknown = "raise",
    ) -> pl.DataFrame:
        """``explain_arrays`` as a frame: ``customer_id, rank, item_id, score, source_item_id, source_ts,
        reason_type`` (padding omitted)."""
        ids = np.array([customer_ids] if isinstance(customer_ids, str) else list(customer_ids), dtype=object)
        b, rank, items, scores, bought, last = self._explained(ids, n, exclude_bought, on_unknown)
        ts = to_datetime(np.where(bought, last, 0) / 1e6)
        item_ids = self.item_ids_.take(items)
        return pl.DataFrame({
            "customer_id": pl.Series(ids.astype(str), dtype=pl.String).gather(b),
            "rank": pl.Series(rank + 1, dtype=pl.Int32),
            "item_id": item_ids,
            "score": pl.Series(scores, dtype=pl.Float32),
            "source_item_id": item_ids.set(pl.Series(~bought), None),
            "source_ts": ts.set(pl.Series(~bought), None),
            "reason_type": pl.Series(np.where(bought, self.reason_bought, self.reason), dtype=pl.String),
        })

    # ------------------------------------------------------------------------------- fold-in
    def partial_fit(self, interactions: pl.DataFrame) -> TIFUKNN:
        """Fold new purchases in: the touched customers' baskets, vectors and neighbours are recomputed
        into the overlay (cost: their own history and one pass over the neighbour pool).

        Lines with the key (order id, else calendar day) of the customer's newest basket join that
        basket (a live order arrives line by line); others are new baskets, placed by time.  Items
        the model has never seen are ignored; new customers are added.
        """
        self._check_fitted()
        p = purchases_of(interactions)
        if p.height == 0:
            return self
        p = p.with_columns(key=basket_key(p), t=pl.col("ts").dt.epoch("us"),
                           i=pl.Series(self.item_ids_.index(p["item_id"].to_list()))).filter(pl.col("i") >= 0)
        for (cid,), part in sorted(p.group_by("customer_id"), key=lambda kv: str(kv[0][0])):
            row = self._row(str(cid))
            folded = self._overlay.get(row)
            if folded is not None:
                baskets, last_key = [(t, items.copy()) for t, items in folded.baskets], folded.last_key
            elif row < self._n_base:
                baskets, last_key = self.baskets_.of(row), str(self.last_key_[row])
            else:
                baskets, last_key = [], ""
            per = part.group_by("key").agg(pl.col("t").max(), pl.col("i").unique().sort()).sort("t", "key")
            last_key = add_baskets(baskets, last_key, per.iter_rows())
            self._overlay[row] = self._fold(baskets, last_key, row)
            if row < self._n_base and in_sorted(np.array([row]), self.pool_)[0]:
                self._cache.pop("overlay", None)  # a neighbour's vector changed
        if len(self._overlay) > max(_MERGE_MIN, _MERGE_SHARE * self._n_base):
            self._merge()
        return self

    def _row(self, cid: str) -> int:
        row = self.customer_ids_.get(cid)
        if row < 0:
            row = self._new_ids.setdefault(cid, self._n_base + len(self._new_ids))
        return row

    def _fold(self, baskets: list[tuple[int, np.ndarray]], last_key: str, row: int) -> _Folded:
        one = Baskets.from_lists([baskets])
        _, items, weight, last = customer_vectors(
            one, len(self.item_ids_), group_size=self.group_size, within_decay=self.within_decay,
            group_decay=self.group_decay)
        query = sp.csr_matrix((weight, items, [0, len(items)]), shape=(1, len(self.item_ids_)))
        nb = nearest(query, np.array([row]), self._pool(), self.n_neighbors, self.metric)[0]
        return _Folded(baskets, last_key, items, weight, last, nb)

    def _merge(self) -> None:
        """Write the overlay into the base arrays (and the new customers into the id map)."""
        if not self._overlay:
            return
        if self._search_pool is None and (self.neighbours_[:, :1] == _UNSEARCHED).any():
            self._search_pool = self._pool()  # rows not searched yet stay so, and meet the fit's pool
        n_base = self._n_base
        rows = np.array(sorted(self._overlay), dtype=np.int64)
        fs = [self._overlay[int(r)] for r in rows]
        n_total = n_base + len(self._new_ids)
        source = np.arange(n_total, dtype=np.int64)
        source[rows] = n_base + np.arange(len(rows))  # row r reads the appended overlay copy
        baskets = self.baskets_.append(Baskets.from_lists([f.baskets for f in fs])).take(source)
        last_key = np.concatenate([self.last_key_.astype(object), np.array([f.last_key for f in fs], dtype=object)])
        neighbours = np.concatenate([self.neighbours_, np.stack([f.neighbours for f in fs])])
        new_ids = sorted(self._new_ids, key=self._new_ids.__getitem__)
        self.customer_ids_ = IdMap(np.concatenate([self.customer_ids_.ids, np.array(new_ids, dtype=object)]))
        pool = self.pool_
        self._set_base(baskets, last_key[source].astype(str), neighbours[source], keep_search_pool=True)
        self.pool_ = pool  # the pool is chosen at fit: keep it (and the cost of a merge linear)

    def forget(self, customer_ids: Sequence[str]) -> TIFUKNN:
        """Erase customers: their baskets and vectors, and their place in others' neighbour lists."""
        self._check_fitted()
        self._merge()
        if self._search_pool is not None:  # its rows are renumbered below: search what waits for it first
            self._search_missing(None)
        drop_rows = self.customer_ids_.index([str(c) for c in customer_ids])
        drop = np.zeros(self._n_base, dtype=bool)
        drop[drop_rows[drop_rows >= 0]] = True
        if not drop.any():
            return self
        keep = np.flatnonzero(~drop)
        new_row = np.full(self._n_base + 1, -1, dtype=np.int64)  # index -1 (padding) stays -1
        new_row[keep] = np.arange(len(keep))
        old = self.neighbours_[keep]
        # padding (-1) stays padding; rows not searched yet (search on query) stay unsearched
        neighbours = np.where(old >= 0, new_row[np.maximum(old, 0)], old).astype(np.int32)
        pool = new_row[self.pool_]
        self.customer_ids_ = IdMap(self.customer_ids_.ids[keep])
        self._set_base(self.baskets_.take(keep), self.last_key_[keep], neighbours)
        self.pool_ = pool[pool >= 0]
        self._cache.clear()
        # Customers who had an erased neighbour search again among the pool left: their list is then what
        # it would be had the erased customer never been there, whether they were folded in before or
        # after the erasure (workers meeting the two in either order agree), and k long, not k - 1.
        lost = np.flatnonzero(((old >= 0) & (neighbours < 0)).any(axis=1))
        if len(lost):
            self.neighbours_[lost] = nearest(self._matrix()[lost], lost, self._pool(), self.n_neighbors, self.metric)
        return self

    # --------------------------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._merge()
        if self.search_neighbours == "at_fit" or self._search_pool is not None:
            self._search_missing(None)  # (a loaded model's pool is the saved base's: search against ours now)
        b = self.baskets_
        arrays = {
            "item_ids": self.item_ids_.to_numpy(), "customer_ids": self.customer_ids_.to_numpy(),
            "bk_indptr": b.bk_indptr, "bk_ts": b.bk_ts, "ln_indptr": b.ln_indptr, "ln_items": b.ln_items,
            "last_key": self.last_key_.astype(str), "pool": self.pool_, **_compact_neighbours(self.neighbours_, self.pool_),
        }
        return arrays, {"customers": len(self.customer_ids_)}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.item_ids_ = IdMap.of_saved(arrays["item_ids"])
        self.customer_ids_ = IdMap.of_saved(arrays["customer_ids"])
        baskets = Baskets(arrays["bk_indptr"], arrays["bk_ts"], arrays["ln_indptr"], arrays["ln_items"])
        pool = arrays["pool"].astype(np.int64)
        shape = (len(arrays["bk_indptr"]) - 1, self.n_neighbors)
        self._set_base(baskets, arrays["last_key"], _expand_neighbours(arrays, pool, shape))
        self.pool_ = pool


#: Marks "no neighbour" in the compact (pool position) form.
_NO_POOL = np.iinfo(np.uint16).max


#: Marks "not searched yet" (search on query) in the compact form.
_UNSEARCHED_POS = _NO_POOL - 1


def _compact_neighbours(neighbours: np.ndarray, pool: np.ndarray) -> dict[str, np.ndarray]:
    """Neighbour lists for the artefact: positions in the pool as uint16 when the pool allows it.

    Why: neighbours are always pool members, and the pool is at most tens of thousands of customers,
    so a position fits two bytes where a customer row takes four — at H&M size (1.4M customers × 100
    neighbours) 280 MB instead of 560 MB of the bundle.  A model that searches on query and was asked
    nothing yet (the served H&M bundle) stores no lists at all: its customers are searched when asked."""
    unsearched = neighbours == _UNSEARCHED
    if neighbours.size and unsearched.all():
        return {}
    if len(pool) >= _UNSEARCHED_POS:
        return {"neighbours": neighbours}
    valid = neighbours >= 0
    pos = np.searchsorted(pool, neighbours)
    at = np.minimum(pos, max(len(pool) - 1, 0))
    if len(pool) == 0 or not (pool[at][valid] == neighbours[valid]).all():
        return {"neighbours": neighbours}  # not all in the pool (cannot happen today): keep rows
    return {"neighbour_pos": np.where(valid, pos, np.where(unsearched, _UNSEARCHED_POS, _NO_POOL)).astype(np.uint16)}


def _expand_neighbours(arrays: dict[str, np.ndarray], pool: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Customer rows (int32, -1 padded, ``_UNSEARCHED`` where not searched) from any artefact form."""
    if "neighbours" in arrays:
        return arrays["neighbours"].astype(np.int32)
    if "neighbour_pos" not in arrays:
        return np.full(shape, _UNSEARCHED, dtype=np.int32)
    pos = arrays["neighbour_pos"]
    rows = pool[np.minimum(pos, max(len(pool) - 1, 0))].astype(np.int32) if len(pool) else np.zeros(pos.shape, np.int32)
    rows[pos == _NO_POOL] = -1
    rows[pos == _UNSEARCHED_POS] = _UNSEARCHED
    return rows

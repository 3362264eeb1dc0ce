"""Helpers shared by the ``implicit``-backed generators (``recsys.models.implicit_cf``).

Why a separate module: the three generators (ALS, BPR, ItemKNN) share the same plumbing — BLAS
thread scoping, row-level BM25 weighting that stays consistent between ``fit`` and fold-in, the
mapping of implicit's padding onto ours, sparse row-wise top-n and CSR ↔ npz round trips — and
keeping it here leaves ``implicit_cf.py`` about modelling choices only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys._arrays import row_score_order, unique_sorted
from recsys.models._util import expand_ranges, purchases_only
from recsys.models.base import top_n

__all__ = [
    "bm25_item_norm",
    "bm25_rows",
    "csr_arrays",
    "csr_from_arrays",
    "from_implicit",
    "purchases_only",
    "single_blas",
    "sparse_top_n",
    "neighbourhood_top_n",
]

#: implicit marks filtered / missing candidates with ``-FLT_MAX``; anything at or below half of it
#: is "nobody proposed this".
_IMPLICIT_PAD = -np.finfo(np.float32).max / 2


@contextmanager
def single_blas() -> Iterator[None]:
    """Scope OpenBLAS/MKL to one thread while implicit runs.

    Why: implicit parallelises over users itself; a multi-threaded BLAS underneath oversubscribes
    the cores (implicit measures up to 10× slow-downs) and ``implicit.utils.check_blas_config``
    emits a ``RuntimeWarning`` the first time a model is constructed with BLAS threads > 1.  The
    limit is scoped (STYLE habit 12) instead of setting ``OPENBLAS_NUM_THREADS`` globally.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def bm25_item_norm(counts: sp.csr_matrix, b: float) -> np.ndarray:
    """Per-item BM25 length normalisation, as ``implicit.nearest_neighbours.bm25_weight`` computes
    it on the item × customer matrix: ``(1 - b) + b * item_total / mean(item_total)``."""
    totals = np.asarray(counts.sum(axis=0)).ravel().astype(np.float64)
    mean = totals.mean() if totals.size and totals.mean() > 0 else 1.0
    return (1.0 - b) + b * totals / mean


def bm25_rows(counts: sp.csr_matrix, item_norm: np.ndarray, k1: float) -> sp.csr_matrix:
    """BM25 weights of customer rows, identical to ``bm25_weight(counts.T, k1, b).T`` on the full
    training matrix but computable for *one* row (fold-in) from the stored item normalisation.

    The "document" is an item and the "term" a customer (implicit's convention), so the idf
    down-weights customers who bought many distinct items and the length norm down-weights
    bestsellers.  The idf only needs the row's own number of distinct items, which is what makes a
    per-row recomputation exact.
    """
    counts = counts.tocsr()
    n_items = counts.shape[1]
    per_row = np.diff(counts.indptr)
    idf = np.log(float(n_items)) - np.log1p(per_row.astype(np.float64))
    rows = np.repeat(np.arange(counts.shape[0]), per_row)
    x = counts.data.astype(np.float64)
    data = x * (k1 + 1.0) / (k1 * item_norm[counts.indices] + x) * idf[rows]
    return sp.csr_matrix((data, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape)


def from_implicit(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map implicit's ``(ids, scores)`` onto our padding: ``-1`` / ``-inf`` for entries implicit
    filled with ``-FLT_MAX`` (filtered or exhausted candidates) or with a negative id."""
    ids = np.atleast_2d(ids).astype(np.int64)
    scores = np.atleast_2d(scores).astype(np.float32)
    pad = (scores <= _IMPLICIT_PAD) | (ids < 0)
    return np.where(pad, -1, ids), np.where(pad, -np.inf, scores).astype(np.float32)


def sparse_top_n(scores: sp.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top ``n`` of the *stored* entries of a CSR matrix (absent entries are not candidates).

    Vectorised (one sort of the stored entries, ``row_score_order``, after dropping those below their
    row's n-th largest when rows are long) so a batch of thousands of customers never materialises a
    dense customers × catalogue array.  Ties break by column index, as in ``top_n``.
    Returns ``(B, n)`` arrays padded with ``-1`` / ``-inf``.
    """
    scores = scores.tocsr()
    b = scores.shape[0]
    out_idx = np.full((b, n), -1, dtype=np.int64)
    out_val = np.full((b, n), -np.inf, dtype=np.float32)
    if scores.nnz == 0:
        return out_idx, out_val
    lengths = np.diff(scores.indptr)
    rows = np.repeat(np.arange(b), lengths)
    data = scores.data.astype(np.float32)  # ranked by the float32 scores returned (ties: column)
    cols, indptr = scores.indices, scores.indptr
    if scores.nnz > _PRUNE_FACTOR * n * b:
        keep = _at_least_nth(data, rows, lengths, indptr, n)
        rows, data, cols = rows[keep], data[keep], cols[keep]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=b))])
    order = row_score_order(rows, data, cols, b, scores.shape[1])
    rank = np.arange(len(order)) - indptr[rows[order]]
    keep = rank < n
    sel = order[keep]
    out_idx[rows[sel], rank[keep]] = cols[sel]
    out_val[rows[sel], rank[keep]] = data[sel]
    return out_idx, out_val


#: ``sparse_top_n`` first drops entries below each row's n-th largest when rows hold this many times n
#: entries on average (TIFU-KNN's neighbours touch ~5k items per customer at H&M size, for a top 40).
_PRUNE_FACTOR = 8
#: Cells of the padded block ``_at_least_nth`` partitions at a time.
_PRUNE_CELLS = 1 << 22


def _at_least_nth(data: np.ndarray, rows: np.ndarray, lengths: np.ndarray, indptr: np.ndarray,
                  n: int) -> np.ndarray:
    """Mask of the entries at least their row's ``n``-th largest value (all of a shorter row's).

    Why: the exact top n then sorts only these (ties with the n-th included, so the (score, column) order
    is unchanged) instead of every stored entry.  Rows longer than ``_PRUNE_FACTOR * n`` are taken in
    order of length, in padded blocks of similar width, one partial sort per block — linear in their
    entries, where the full sort of millions of entries was most of ``sparse_top_n``'s time.
    """
    kth = np.full(len(lengths), -np.inf, dtype=np.float32)
    long_rows = np.flatnonzero(lengths > _PRUNE_FACTOR * n)
    long_rows = long_rows[np.argsort(lengths[long_rows], kind="stable")]
    lo = 0
    while lo < len(long_rows):
        hi = lo + 1
        while hi < len(long_rows) and int(lengths[long_rows[hi]]) * (hi + 1 - lo) <= _PRUNE_CELLS:
            hi += 1
        width = int(lengths[long_rows[hi - 1]])  # the longest of the block (sorted by length)
        block_rows = long_rows[lo:hi]
        starts = indptr[block_rows]
        local, at = expand_ranges(starts, lengths[block_rows])
        block = np.full((len(block_rows), width), -np.inf, dtype=np.float32)
        block[local, at - starts[local]] = data[at]
        kth[block_rows] = np.partition(block, width - n, axis=1)[:, width - n]
        lo = hi
    return data >= kth[rows]


#: Up to this many customers, neighbourhood models score through the sparse product instead of a dense
#: customers × catalogue block: one customer touches a few thousand items of a 92k catalogue.
SPARSE_ROWS = 8


def positive_top_n(
    product: sp.spmatrix, n: int, exclude: sp.csr_matrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` of the *positive* stored entries of each row, without ``exclude``'s columns of that row.

    The sparse twin of "densify, set ≤ 0 and excluded to -inf, ``top_n``": identical lists (both break
    ties by index), at a cost proportional to the row's entries rather than to the catalogue.  Meant
    for a few rows (``SPARSE_ROWS``): one partial sort per row.
    """
    m = sp.csr_matrix(product)
    m.sort_indices()  # position order = column order, so top_n's index tie-break is the column's
    b = m.shape[0]
    out_idx = np.full((b, n), -1, dtype=np.int64)
    out_val = np.full((b, n), -np.inf, dtype=np.float32)
    ex = exclude.tocsr() if exclude is not None else None
    for r in range(b):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        cols, vals = m.indices[lo:hi], m.data[lo:hi]
        keep = vals > 0
        if ex is not None:
            keep &= ~np.isin(cols, ex.indices[ex.indptr[r]:ex.indptr[r + 1]])
        cols, vals = cols[keep], vals[keep]
        if len(vals) == 0:
            continue
        pos, top = top_n(vals[None, :], n)
        k = pos.shape[1]
        out_idx[r, :k] = cols[pos[0]]
        out_val[r, :k] = top[0]
    return out_idx, out_val


def csr_arrays(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays for ``np.savez`` (data only, no pickled scipy objects)."""
    m = m.tocsr()
    return {
        f"{prefix}_data": m.data,
        f"{prefix}_indices": m.indices,
        f"{prefix}_indptr": m.indptr,
        f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64),
    }


def csr_from_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> sp.csr_matrix:
    """Inverse of ``csr_arrays``."""
    shape = tuple(int(v) for v in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape
    )


#: Above this density of the customers × catalogue product, a dense block + partial sort beats
#: sorting the sparse product.  Measured (1,000 customers, same run): Complete Journey item-KNN is
#: 19 % dense (dense 5.2 s, sparse 8.3 s), CJ co-purchase 1.4 % (dense 1.25 s, sparse 0.4 s); the
#: 10%-size synthetic shop's co-purchase far below 1 % (10k customers: dense 0.56 s, sparse 0.14 s).
_DENSE_SHARE = 0.05
#: Stored entries of one sparse product handled at once (~12 bytes each).
_SPARSE_ENTRIES = 20_000_000


def neighbourhood_top_n(
    history: sp.csr_matrix, neighbours: sp.csr_matrix, n: int, *, exclude_bought: bool, dense_cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` of ``history @ neighbours`` per row: positive scores only, bought items out on request.

    The one scorer of the neighbourhood generators (item-KNN, co-purchase).  Why two routes: at shop
    scale a customer touches a few hundred items of a 105k catalogue, so a dense customers × catalogue
    block is mostly wasted work and its cost grows with customers × items; on deep grocery histories
    item-KNN's product is a fifth dense and the dense block's partial sort wins.  The route is chosen per
    chunk from the product's actual density; both give identical lists (ties by column index).
    Returns ``(B, k)`` indices / scores padded with -1 / -inf, ``k = min(n, items)``.
    """
    rows, n_items = history.shape
    k = min(n, n_items)
    out_idx = np.full((rows, k), -1, dtype=np.int64)
    out_val = np.full((rows, k), -np.inf, dtype=np.float32)
    if rows == 0 or k == 0:
        return out_idx, out_val
    history = history.tocsr()
    reach = np.diff(neighbours.indptr)[history.indices]  # upper bound of each row's product entries
    bounds = np.cumsum(np.bincount(np.repeat(np.arange(rows), np.diff(history.indptr)), weights=reach,
                                   minlength=rows))
    lo = 0
    while lo < rows:
        # a chunk whose product has at most ~_SPARSE_ENTRIES entries (one row at least)
        hi = max(int(np.searchsorted(bounds, (bounds[lo - 1] if lo else 0.0) + _SPARSE_ENTRIES, side="right")),
                 lo + 1)
        sub = history[lo:hi]
        # the density of a first dense-sized block decides; the dense route never builds the chunk's
        # whole sparse product (on deep histories that is tens of millions of entries)
        step = max(1, dense_cells // max(n_items, 1))
        probe = (sub[:step] @ neighbours).tocsr()
        if probe.nnz < _DENSE_SHARE * probe.shape[0] * n_items:
            prod = probe if hi - lo <= step else (sub @ neighbours).tocsr()
            out_idx[lo:hi], out_val[lo:hi] = _sparse_route(prod, sub if exclude_bought else None, k)
        else:
            for b in range(lo, hi, step):
                block = probe if b == lo else (history[b:b + step] @ neighbours).tocsr()
                out_idx[b:b + step], out_val[b:b + step] = _dense_route(
                    block, history[b:b + step] if exclude_bought else None, k)
        lo = hi
    return out_idx, out_val


def _sparse_route(prod: sp.csr_matrix, bought: sp.csr_matrix | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    prod.data[prod.data <= 0] = 0.0
    if bought is not None and bought.nnz:
        n_items = prod.shape[1]
        hit = bought.tocoo()
        keys_bought = unique_sorted(hit.row.astype(np.int64) * n_items + hit.col)
        r = np.repeat(np.arange(prod.shape[0], dtype=np.int64), np.diff(prod.indptr))
        keys = r * n_items + prod.indices
        at = np.clip(np.searchsorted(keys_bought, keys), 0, len(keys_bought) - 1)
        prod.data[keys_bought[at] == keys] = 0.0
    prod.eliminate_zeros()
    return sparse_top_n(prod, k)


def _dense_route(prod: sp.csr_matrix, bought: sp.csr_matrix | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    block = prod.toarray()
    block[block <= 0] = -np.inf
    if bought is not None:
        hit = bought.tocoo()
        block[hit.row, hit.col] = -np.inf
    out_idx, out_val = top_n(block, k)
    out_idx[~np.isfinite(out_val)] = -1
    return out_idx, out_val

"""The arithmetic of TIFU-KNN (``tifu_knn.py``): baskets, time-decayed item-frequency vectors and the
nearest-neighbour search, as pure functions of integer arrays.

Why apart from the model: the same two functions build every customer's vector at ``fit`` and one
customer's vector at fold-in, and find neighbours for a batch at ``fit`` and for one customer at
fold-in; keeping them free of model state lets the model file hold only the bookkeeping (ids, the
fold-in overlay, persistence).  Private to ``recsys.models``.

Conventions: customers, items and baskets are integer indices; baskets are stored customer by
customer, oldest first (``bk_indptr`` → basket rows, ``ln_indptr`` → the basket's distinct items);
times are µs since the epoch.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys._arrays import row_score_order, unique_inverse, unique_sorted
from recsys.models.base import top_n

__all__ = ["add_baskets", "Baskets", "DAY_KEY", "Pool", "basket_key", "basket_table", "customer_vectors", "nearest", "on_two_threads", "strongest", "take_rows"]

#: Prefix of the basket key of purchases without an order id: the customer's calendar day.
DAY_KEY = "day:"
#: Dense cells (query customers × pool customers, or customers × items) per block: ~32 MB of float64.
BLOCK_CELLS = 4_000_000

Metric = Literal["euclidean", "cosine"]
T = TypeVar("T")


class Baskets:
    """Every customer's baskets in time order: ``bk_indptr`` (customers + 1) → ``bk_ts`` (µs) and
    ``ln_indptr`` (baskets + 1) → ``ln_items`` (sorted distinct items of the basket)."""

    __slots__ = ("bk_indptr", "bk_ts", "ln_indptr", "ln_items")

    def __init__(self, bk_indptr: np.ndarray, bk_ts: np.ndarray, ln_indptr: np.ndarray, ln_items: np.ndarray):
        self.bk_indptr = np.asarray(bk_indptr, dtype=np.int64)
        self.bk_ts = np.asarray(bk_ts, dtype=np.int64)
        self.ln_indptr = np.asarray(ln_indptr, dtype=np.int64)
        self.ln_items = np.asarray(ln_items, dtype=np.int32)

    @property
    def n_customers(self) -> int:
        """Customer rows (``len(bk_indptr) - 1``)."""
        return len(self.bk_indptr) - 1

    def of(self, row: int) -> list[tuple[int, np.ndarray]]:
        """One customer's baskets as ``[(ts, items), ...]``, oldest first (copies: the fold-in edits them)."""
        lo, hi = int(self.bk_indptr[row]), int(self.bk_indptr[row + 1])
        return [(int(self.bk_ts[b]), self.ln_items[self.ln_indptr[b]:self.ln_indptr[b + 1]].copy())
                for b in range(lo, hi)]

    @classmethod
    def from_lists(cls, per_customer: list[list[tuple[int, np.ndarray]]]) -> Baskets:
        """The inverse of ``of`` for several customers (the fold-in's few)."""
        counts = np.array([len(bs) for bs in per_customer], dtype=np.int64)
        flat = [b for bs in per_customer for b in bs]
        sizes = np.array([len(items) for _, items in flat], dtype=np.int64)
        items = np.concatenate([i for _, i in flat]) if flat else np.zeros(0, np.int32)
        return cls(np.concatenate([[0], np.cumsum(counts)]), np.array([t for t, _ in flat], dtype=np.int64),
                   np.concatenate([[0], np.cumsum(sizes)]), items)

    def append(self, other: Baskets) -> Baskets:
        """``other``'s customers as rows after this one's (the fold-in overlay, before ``take``)."""
        return Baskets(
            np.concatenate([self.bk_indptr, other.bk_indptr[1:] + self.bk_indptr[-1]]),
            np.concatenate([self.bk_ts, other.bk_ts]),
            np.concatenate([self.ln_indptr, other.ln_indptr[1:] + self.ln_indptr[-1]]),
            np.concatenate([self.ln_items, other.ln_items]),
        )

    def take(self, rows: np.ndarray) -> Baskets:
        """The baskets of customers ``rows``, in that order (merging the overlay, erasing customers)."""
        bk_indptr, b = take_rows(self.bk_indptr, rows)
        ln_indptr, pos = take_rows(self.ln_indptr, b)
        return Baskets(bk_indptr, self.bk_ts[b], ln_indptr, self.ln_items[pos])


def basket_key(frame: pl.DataFrame) -> pl.Expr:
    """The order id, or the customer's calendar day where it is null (a shopping trip's stand-in)."""
    day = pl.lit(DAY_KEY) + pl.col("ts").dt.date().cast(pl.String)
    if "order_id" not in frame.columns:
        return day
    return pl.coalesce(pl.col("order_id").cast(pl.String), day)


def basket_table(c: np.ndarray, i: np.ndarray, t: np.ndarray, key: pl.Series, n_customers: int) -> tuple[Baskets, np.ndarray]:
    """Baskets of purchase lines (customer row ``c``, item ``i``, time ``t`` in µs, basket ``key``),
    plus the key of every customer's newest basket ('' for customers without one).

    A basket's time is its latest line's; baskets of a customer are ordered by (time, key).  Why
    integer sorts: grouping and joining the lines on (customer, key string) held ~8 GB of hash tables
    for H&M's 31M lines; the keys' dense ranks (ordered like the strings) make every step a sort of
    packed integers, a few arrays of the lines' length at a time.
    """
    n_lines = len(c)
    if n_lines == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Baskets(np.zeros(n_customers + 1, np.int64), empty, np.zeros(1, np.int64), empty), \
            np.full(n_customers, "", dtype=object)
    code = key.rank("dense").to_numpy().astype(np.int64) - 1  # 0.. in the keys' string order
    code_bits = max(int(code.max()).bit_length(), 1)
    packed = (np.asarray(c, dtype=np.int64) << code_bits) | code  # (customer, key) as one integer
    del code
    o = np.argsort(packed)
    ps = packed[o]
    del packed
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])  # one run of lines per basket
    run_c, run_code = ps[starts] >> code_bits, ps[starts] & ((1 << code_bits) - 1)
    del ps
    run_t = np.maximum.reduceat(np.asarray(t, dtype=np.int64)[o], starts)
    # baskets ordered by (customer, time, key)
    by_time = np.lexsort((run_code, run_t, run_c))
    b_of_run = np.empty(len(starts), dtype=np.int64)
    b_of_run[by_time] = np.arange(len(starts))
    run_of_line = np.repeat(np.arange(len(starts), dtype=np.int64), np.diff(np.r_[starts, n_lines]))
    item_bits = max(int(np.max(i)).bit_length(), 1)
    pairs = unique_sorted((b_of_run[run_of_line] << item_bits) | np.asarray(i, dtype=np.int64)[o])  # distinct (b, i)
    del run_of_line
    b_cust, b_ts = run_c[by_time], run_t[by_time]
    bk_indptr = np.concatenate([[0], np.cumsum(np.bincount(b_cust, minlength=n_customers))])
    n_baskets = len(starts)
    ln_b = pairs >> item_bits
    ln_indptr = np.concatenate([[0], np.cumsum(np.bincount(ln_b, minlength=n_baskets))])
    last_key = np.full(n_customers, "", dtype=object)
    newest = bk_indptr[1:][np.diff(bk_indptr) > 0] - 1  # each customer's last basket
    first_line = o[starts[by_time[newest]]]  # a line of that basket: its key string
    last_key[b_cust[newest]] = np.asarray(key.gather(first_line).to_list(), dtype=object)
    out = Baskets(bk_indptr, b_ts, ln_indptr, pairs & ((1 << item_bits) - 1))
    return out, last_key


def customer_vectors(
    baskets: Baskets, n_items: int, *, group_size: int, within_decay: float, group_decay: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every customer's TIFU vector as CSR ``(indptr, items, weight, last_ts)`` (items sorted per row).

    Hu et al. (SIGIR 2020), eqs. 2–4: the baskets, newest first, are cut into groups of
    ``group_size`` (the oldest group may be smaller); within a group the basket ``q`` places from
    the group's newest weighs ``within_decay ** q`` and the group's vector is the mean over its
    baskets; the customer's vector is the mean over groups of ``group_decay ** g`` × the ``g``-th
    newest group's vector.  Baskets are 0/1 (an item bought twice in one order counts once).
    ``last_ts`` is the newest basket holding the item (the explanation's date).
    """
    counts = np.diff(baskets.bk_indptr)
    n_cust = len(counts)
    b_cust = np.repeat(np.arange(n_cust, dtype=np.int64), counts)
    pos = baskets.bk_indptr[b_cust + 1] - 1 - np.arange(len(b_cust), dtype=np.int64)  # 0 = newest
    m = group_size
    g, q = pos // m, pos % m
    n_c = counts[b_cust]
    groups = -(-n_c // m)
    in_group = np.minimum(m, n_c - g * m)
    w_basket = np.power(within_decay, q) / in_group * np.power(group_decay, g) / groups
    sizes = np.diff(baskets.ln_indptr)
    line_b = np.repeat(np.arange(len(b_cust), dtype=np.int64), sizes)
    key = b_cust[line_b] * n_items + baskets.ln_items
    uniq, inv = unique_inverse(key)
    weight = np.bincount(inv, weights=w_basket[line_b], minlength=len(uniq))
    last = np.full(len(uniq), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, inv, baskets.bk_ts[line_b])
    rows = uniq // max(n_items, 1)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_cust))]).astype(np.int64)
    return indptr, (uniq % max(n_items, 1)).astype(np.int32), weight.astype(np.float32), last


class Pool:
    """The customers neighbours are searched among, ready for ``nearest``: their rows (ascending),
    their vectors transposed (items × pool) and squared norms, built once per base."""

    __slots__ = ("rows", "t", "sq")

    def __init__(self, rows: np.ndarray, vectors: sp.csr_matrix) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)
        self.t = vectors.T.tocsr()
        self.sq = np.asarray(vectors.multiply(vectors).sum(axis=1), dtype=np.float64).ravel()

    def __len__(self) -> int:
        return len(self.rows)


def nearest(queries: sp.csr_matrix, query_rows: np.ndarray, pool: Pool, k: int, metric: Metric) -> np.ndarray:
    """The ``k`` pool customers nearest each query, as customer rows (``(len(queries), k)``, -1 padded).

    ``euclidean`` (the paper's choice) ranks by ``‖u − v‖² = ‖u‖² + ‖v‖² − 2 u·v``, i.e. by
    ``2 u·v − ‖v‖²`` (``‖u‖²`` is the query's own constant); ``cosine`` keeps only pool customers
    sharing an item.  A query never neighbours itself (``query_rows`` are the queries' own customer
    rows).  Ties go to the lower customer row, so any batch size gives the same neighbours.  Memory:
    ``BLOCK_CELLS`` cells at a time, whatever the shop; blocks run ``on_two_threads``, each writing its
    own rows of the result.
    """
    n_q, n_pool = queries.shape[0], len(pool)
    out = np.full((n_q, k), -1, dtype=np.int32)
    if n_q == 0 or n_pool == 0 or k == 0:
        return out
    q_sq = np.asarray(queries.multiply(queries).sum(axis=1), dtype=np.float64).ravel()
    step = max(1, BLOCK_CELLS // n_pool)

    def block(lo: int) -> None:
        hi = min(n_q, lo + step)
        dot = (queries[lo:hi] @ pool.t).toarray().astype(np.float64)
        if metric == "euclidean":
            score = 2.0 * dot - pool.sq[None, :]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                score = dot / np.sqrt(q_sq[lo:hi, None] * pool.sq[None, :])
            score[~(dot > 0)] = -np.inf
        at = np.searchsorted(pool.rows, query_rows[lo:hi])
        at = np.minimum(at, n_pool - 1)
        mine = pool.rows[at] == query_rows[lo:hi]
        score[np.flatnonzero(mine), at[mine]] = -np.inf
        idx, val = top_n(score, k)
        got = pool.rows[idx].astype(np.int32)
        got[~np.isfinite(val)] = -1
        out[lo:hi, : got.shape[1]] = got

    on_two_threads(block, range(0, n_q, step))
    return out


def on_two_threads(fn: Callable[[int], T], starts: Sequence[int]) -> list[T]:
    """``[fn(s) for s in starts]``, on two threads when there are several blocks.

    Why two: the blocks' heavy parts (scipy's sparse products, numpy's partial sorts) release the GIL,
    which gives ~1.8× on this 2-core box; results do not depend on it (each block is computed alone)."""
    if len(starts) < 2:
        return [fn(s) for s in starts]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tifu-blocks") as workers:
        return list(workers.map(fn, starts))


def take_rows(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR rows ``rows`` of a CSR structure: the new ``indptr`` and the positions of their entries."""
    rows = np.asarray(rows, dtype=np.int64)
    counts = indptr[rows + 1] - indptr[rows]
    starts = indptr[rows]
    total = int(counts.sum())
    offsets = np.cumsum(counts) - counts
    pos = np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), pos


def strongest(matrix: sp.csr_matrix, keep: int | None) -> sp.csr_matrix:
    """``matrix`` with only each row's ``keep`` largest entries (ties: lower column); ``None``: as is."""
    counts = np.diff(matrix.indptr)
    if keep is None or counts.max(initial=0) <= keep:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), counts)
    order = row_score_order(rows, matrix.data, matrix.indices, matrix.shape[0], matrix.shape[1])
    rank = np.arange(len(order), dtype=np.int64) - np.repeat(matrix.indptr[:-1], counts)
    picked = np.sort(order[rank < keep])  # back to (row, column) order
    indptr = np.concatenate([[0], np.cumsum(np.minimum(counts, keep))]).astype(np.int64)
    return sp.csr_matrix((matrix.data[picked], matrix.indices[picked], indptr), shape=matrix.shape)


def add_baskets(baskets: list[tuple[int, np.ndarray]], last_key: str, new: Iterable[tuple[Any, ...]]) -> str:
    """Add ``(key, ts, items)`` baskets, in time order, to one customer's ``baskets`` (in place) and
    return the key of the newest basket.

    Lines with the key of the newest basket join it (a live order arrives line by line); any other
    key is a new basket, placed by time.  One customer's history, so plain lists are the right size.
    """
    for key, t, items in new:
        items = np.asarray(items, dtype=np.int32)
        if baskets and key == last_key:
            t0, old = baskets[-1]
            baskets[-1] = (max(t0, int(t)), np.union1d(old, items).astype(np.int32))
            continue
        at = bisect.bisect_right([b[0] for b in baskets], int(t))
        baskets.insert(at, (int(t), items))
        if at == len(baskets) - 1:
            last_key = str(key)
    return last_key

"""Per-customer state that one event can update in time proportional to the event, not to the shop.

Why: every generator keeps some state per customer (what they bought, decayed counts, their baskets,
their category shares) in arrays indexed by customer row — CSR layouts that are compact and fast to
read in batches of thousands of customers.  Folding one purchase in used to rebuild those arrays
(``old + new``, re-sort, re-index): 50–250 ms per generator at 140k customers and ~10× that at H&M's
1.4M, while the service held its lock.  Here the CSR base stays untouched; a customer whose records
change gets an *overlay row* that reads take instead of the base row, and overlay rows are merged into
the base only when there are more than ~1 % of the base's rows (``compact``), so the merge's O(shop)
cost is spread over as many events.  The same idea as ``PurchaseHistory``'s pending rows.

Two shapes, one mechanism:

* ``RowTable`` — variable-length records with named columns (e.g. a customer's (item, count, first,
  last, weight) pairs, or their basket history), read with ``gather(rows)``;
* ``OverlayCSR`` — a customer × something ``scipy.sparse`` matrix (what they bought, their category
  weights) whose row selection ``m[rows]`` returns an ordinary ``csr_matrix``, so code written for
  scipy keeps working.

Not thread-safe on its own: writers and readers are serialised by the caller (the service's lock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import scipy.sparse as sp

from recsys.models._util import expand_ranges, gather_rows

__all__ = ["OverlayCSR", "RowTable", "ensure_len"]

#: Overlay rows allowed before a merge into the base, as a share of the base's rows (and at least 64).
COMPACT_SHARE = 0.01
_COMPACT_MIN = 64


def ensure_len(arr: np.ndarray, n: int, fill: float | int) -> np.ndarray:
    """``arr`` if it has at least ``n`` entries, else a copy grown to ≥ ``n`` (capacity doubling) with
    ``fill`` in the new entries.

    For per-customer 1-d arrays (order counts, last purchase times): new customers arrive one by one,
    and growing by exactly one copied 1.4M entries per new customer.  Such arrays may be longer than
    the customer count; index them by row and slice ``[:n_customers]`` to save.
    """
    if len(arr) >= n:
        return arr if arr.flags.writeable else arr.copy()  # loaded shared arrays are read-only
    out = np.full((max(n, 2 * len(arr), 16), *arr.shape[1:]), fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class RowTable:
    """Records grouped by customer row: a CSR base (``indptr`` + named columns) plus replaced rows.

    Rows past the base (new customers) are empty until set.  ``gather`` returns records grouped by
    the position of their row in the request, in request order, each row's records in stored order.
    """

    __slots__ = ("indptr", "columns", "_n", "_over", "_over_keys")

    def __init__(self, indptr: np.ndarray, columns: Mapping[str, np.ndarray], n_rows: int | None = None) -> None:
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.columns = dict(columns)
        self._n = len(self.indptr) - 1 if n_rows is None else int(n_rows)
        self._over: dict[int, dict[str, np.ndarray]] = {}
        self._over_keys: np.ndarray | None = np.zeros(0, np.int64)

    # ------------------------------------------------------------------ shape
    @property
    def n_rows(self) -> int:
        """Rows in the table, base and grown (new customers) alike."""
        return self._n

    @property
    def n_base(self) -> int:
        """Rows held in the CSR base."""
        return len(self.indptr) - 1

    @property
    def n_overlay(self) -> int:
        """Rows currently read from the overlay (0 after ``compact``)."""
        return len(self._over)

    def grow(self, n_rows: int) -> None:
        """At least ``n_rows`` rows; the new ones are empty."""
        self._n = max(self._n, int(n_rows))

    def _empty(self) -> dict[str, np.ndarray]:
        return {k: v[:0] for k, v in self.columns.items()}

    # ------------------------------------------------------------------- read
    def get(self, row: int) -> dict[str, np.ndarray]:
        """The records of one row (views into the base: do not modify)."""
        row = int(row)
        over = self._over.get(row)
        if over is not None:
            return over
        if 0 <= row < self.n_base:
            s, e = int(self.indptr[row]), int(self.indptr[row + 1])
            return {k: v[s:e] for k, v in self.columns.items()}
        return self._empty()

    def _overlaid(self, rows: np.ndarray) -> np.ndarray:
        if not self._over:
            return np.zeros(len(rows), dtype=bool)
        if self._over_keys is None:
            self._over_keys = np.fromiter(sorted(self._over), dtype=np.int64, count=len(self._over))
        return np.isin(rows, self._over_keys)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(local, columns)``: every record of ``rows`` with the position of its row in ``rows``.

        ``rows`` may hold ``-1`` (no row: no records).  Records come grouped by ``local`` ascending.
        """
        rows = np.asarray(rows, dtype=np.int64)
        over = self._overlaid(rows)
        base = (rows >= 0) & (rows < self.n_base) & ~over
        local, pos = gather_rows(self.indptr, np.where(base, rows, -1))
        cols = {k: v[pos] for k, v in self.columns.items()}
        if not over.any():
            return local, cols
        extra = [(int(k), self._over[int(rows[k])]) for k in np.flatnonzero(over)]
        local = np.concatenate([local, *[np.full(len(next(iter(o.values()))), k, np.int64) for k, o in extra]])
        cols = {name: np.concatenate([col, *[o[name] for _, o in extra]]) for name, col in cols.items()}
        order = np.argsort(local, kind="stable")
        return local[order], {k: v[order] for k, v in cols.items()}

    # ------------------------------------------------------------------ write
    def set(self, row: int, records: Mapping[str, np.ndarray]) -> None:
        """Replace the records of ``row`` (grows the table when ``row`` is new)."""
        self.set_many([row], [records])

    def set_many(self, rows: Iterable[int], records: Iterable[Mapping[str, np.ndarray]]) -> None:
        """Replace the records of several rows; merges the overlay into the base at most once."""
        for row, rec in zip(rows, records, strict=True):
            row = int(row)
            if set(rec) != set(self.columns):
                raise ValueError(f"RowTable.set: columns {sorted(rec)} != {sorted(self.columns)}")
            self.grow(row + 1)
            self._over[row] = {k: np.asarray(rec[k], dtype=self.columns[k].dtype) for k in self.columns}
        self._over_keys = None
        if len(self._over) > max(_COMPACT_MIN, int(self.n_base * COMPACT_SHARE)):
            self.compact()

    def compact(self) -> None:
        """Merge the overlay into the base (O(records)); reads give the same answers before and after."""
        if not self._over and self.n_base == self._n:
            return
        n = self._n
        lens = np.zeros(n, dtype=np.int64)
        lens[: self.n_base] = np.diff(self.indptr)
        keys = np.fromiter(sorted(self._over), dtype=np.int64, count=len(self._over))
        over_lens = np.array([len(next(iter(self._over[int(r)].values()))) for r in keys], dtype=np.int64)
        keep_base = np.ones(self.n_base, dtype=bool)
        in_base = keys[keys < self.n_base]
        keep_base[in_base] = False
        lens[keys] = over_lens
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        total = int(indptr[-1])
        # base rows kept: their whole segment moves by (new start - old start)
        base_rows = np.flatnonzero(keep_base)
        owner, src = expand_ranges(self.indptr[base_rows], np.diff(self.indptr)[base_rows])
        src_owner = base_rows[owner]
        dst = src + (indptr[src_owner] - self.indptr[src_owner])
        new_cols = {}
        for name, col in self.columns.items():
            out = np.empty(total, dtype=col.dtype)
            out[dst] = col[src]
            for r, ln in zip(keys, over_lens, strict=True):
                if ln:
                    out[indptr[r]: indptr[r] + ln] = self._over[int(r)][name]
            new_cols[name] = out
        self.indptr, self.columns = indptr, new_cols
        self._over, self._over_keys = {}, np.zeros(0, np.int64)

    def keep_rows(self, keep: np.ndarray) -> None:
        """Keep only rows ``keep`` (sorted row numbers), renumbered ``0..len(keep)-1`` (erasure)."""
        self.compact()
        keep = np.asarray(keep, dtype=np.int64)
        lens = np.diff(self.indptr)[keep]
        _, owner_pos = expand_ranges(self.indptr[keep], lens)
        self.columns = {k: v[owner_pos] for k, v in self.columns.items()}
        self.indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        self._n = len(keep)

    def arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(indptr, columns)`` with the overlay merged in (for saving)."""
        self.compact()
        return self.indptr, self.columns


class OverlayCSR:
    """A customer × column sparse matrix whose rows can be replaced one at a time (see module doc).

    ``m[rows]`` is an ordinary ``scipy.sparse.csr_matrix`` of those rows (column indices sorted), so
    callers that slice rows keep working; ``tocsr()`` is the whole matrix with the overlay merged in.
    """

    __slots__ = ("_t", "n_cols", "_base")

    def __init__(self, matrix: sp.csr_matrix | sp.sparray) -> None:
        m = sp.csr_matrix(matrix)
        m.sum_duplicates()
        m.sort_indices()
        self._t = RowTable(m.indptr, {"indices": m.indices.astype(np.int32), "data": m.data}, m.shape[0])
        self.n_cols = m.shape[1]
        self._base: sp.csr_matrix | None = m

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)``, grown rows included."""
        return (self._t.n_rows, self.n_cols)

    @property
    def n_overlay(self) -> int:
        """Rows currently read from the overlay instead of the base."""
        return self._t.n_overlay

    def grow(self, n_rows: int) -> None:
        """At least ``n_rows`` rows; the new ones are empty (``RowTable.grow``)."""
        self._t.grow(n_rows)

    def __getitem__(self, rows: int | np.ndarray | Iterable[int]) -> sp.csr_matrix:
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        if self._base is not None and self._t.n_overlay == 0 and (rows.size == 0 or rows.max() < self._t.n_base):
            return self._base[rows]
        local, cols = self._t.gather(rows)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(local, minlength=len(rows)))]).astype(np.int64)
        return sp.csr_matrix((cols["data"], cols["indices"], indptr), shape=(len(rows), self.n_cols))

    def row_arrays(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """``(column indices, values)`` of one row."""
        rec = self._t.get(row)
        return rec["indices"], rec["data"]

    def add(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray | None = None, *, how: str = "sum") -> None:
        """Combine entries ``(rows[k], cols[k], values[k])`` into the matrix, touching only those rows.

        ``how``: ``"sum"`` adds values (duplicates add up); ``"or"`` sets 1 wherever an entry exists.
        Rows past the end grow the matrix.  Negative rows or columns (unknown ids) are ignored.
        """
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        values = np.ones(len(rows)) if values is None else np.asarray(values, dtype=np.float64)
        ok = (rows >= 0) & (cols >= 0)
        rows, cols, values = rows[ok], cols[ok], values[ok]
        if len(rows) == 0:
            return
        self._t.grow(int(rows.max()) + 1)
        dtype = self._t.columns["data"].dtype
        touched, inv = np.unique(rows, return_inverse=True)
        records = []
        for k, r in enumerate(touched):
            sel = inv == k
            old_i, old_v = self.row_arrays(int(r))
            idx = np.concatenate([old_i.astype(np.int64), cols[sel]])
            val = np.concatenate([old_v.astype(np.float64), values[sel]])
            uniq, at = np.unique(idx, return_inverse=True)
            if how == "or":
                merged = np.ones(len(uniq))
            else:
                merged = np.zeros(len(uniq))
                np.add.at(merged, at, val)
            records.append({"indices": uniq.astype(np.int32), "data": merged.astype(dtype)})
        self._t.set_many(touched, records)
        self._base = None if (self._t.n_overlay or self._t.n_rows != self._t.n_base) else self._rebuild_base()

    def _rebuild_base(self) -> sp.csr_matrix:
        t = self._t
        return sp.csr_matrix((t.columns["data"], t.columns["indices"], t.indptr), shape=(t.n_base, self.n_cols))

    def tocsr(self) -> sp.csr_matrix:
        """The whole matrix, overlay merged in."""
        if self._t.n_overlay or self._t.n_rows != self._t.n_base:
            self._t.compact()
            self._base = None
        if self._base is None:
            self._base = self._rebuild_base()
        return self._base

    def keep_rows(self, keep: np.ndarray) -> None:
        """Keep only rows ``keep`` (sorted), renumbered (erasure)."""
        self._t.keep_rows(keep)
        self._base = self._rebuild_base()

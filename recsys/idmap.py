"""``IdMap``: external string ids ↔ contiguous integer indices, saved with the model.

Why inside the model: factors and matrices are indexed by position; an artefact that does not carry
its own mapping silently recommends the wrong items once the catalogue order changes.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl

__all__ = ["IdMap"]

#: ``IdMap.of_saved``'s maps of shared read-only id arrays, by array identity (dropped with the array).
_SAVED: dict[int, tuple[weakref.ref, IdMap]] = {}


class IdMap:
    """Bidirectional map between string ids and ``0..n-1``; order is the order given (unique).

    ``extend`` appends in amortised O(new ids): maps made by extending share one growing buffer and
    one dict (each map sees only its first ``len`` ids), because the service extends every
    generator's customer map once per new customer and copying 1.4M ids each time cost ~0.1 s.
    """

    __slots__ = ("_buf", "_n", "_index", "_group", "_pl_table", "_grown", "__weakref__")

    def __init__(self, ids: Sequence[str] | np.ndarray) -> None:
        arr = np.asarray(ids, dtype=object)
        index = {str(v): i for i, v in enumerate(arr)}
        if len(index) != len(arr):
            raise ValueError("IdMap ids must be unique")
        self._buf: np.ndarray = arr.astype(str).astype(object)
        self._n = len(self._buf)
        self._index = index
        self._group = [self._n]  # ids in use in the shared buffer; the map with that many is the tip
        self._pl_table: pl.DataFrame | None = None
        self._grown: IdMap | None = None  # the map that extended this one into a new buffer

    @property
    def ids(self) -> np.ndarray:
        """The ids in index order (a view: do not modify)."""
        return self._buf[: self._n]

    @classmethod
    def of_saved(cls, ids: np.ndarray) -> IdMap:
        """The map of a saved id array; one map per array object when the array is shared read-only.

        Why: a bundle's generators load the same customer ids (``recsys.models._shared``); a map each
        meant nine dicts of 1.4M ids at H&M size (~1 GB, ~5 s of loading) for identical content.
        Sharing is safe: a map never changes what it maps, ``extend`` returns a new map, and the maps
        of one buffer that fold in the same new customer reuse each other's append.
        """
        if ids.flags.writeable:
            return cls(ids)
        key = id(ids)
        hit = _SAVED.get(key)
        if hit is not None and hit[0]() is ids:
            return hit[1]
        out = cls(ids)

        def drop(_ref: weakref.ref, key: int = key) -> None:
            _SAVED.pop(key, None)

        _SAVED[key] = (weakref.ref(ids, drop), out)
        return out

    @classmethod
    def from_values(cls, values: Iterable[str]) -> IdMap:
        """Sorted unique ids: deterministic regardless of row order."""
        return cls(np.array(sorted(set(map(str, values))), dtype=object))

    def __len__(self) -> int:
        return self._n

    def __contains__(self, key: object) -> bool:
        return self._index.get(key, self._n) < self._n  # type: ignore[call-overload]

    def get(self, key: str, default: int = -1) -> int:
        """The index of ``key``, or ``default`` when unknown (ids appended to the shared dict by a longer map
        of the same buffer count as unknown here)."""
        i = self._index.get(key, -1)
        return i if 0 <= i < self._n else default

    def index(self, keys: Iterable[str]) -> np.ndarray:
        """Indices of ``keys`` (int64); unknown ids map to -1.

        Large inputs (a whole interaction table) go through one polars join instead of a Python dict
        lookup per row: ~50× faster at a million rows.
        """
        if not isinstance(keys, (list, tuple, np.ndarray)):
            keys = list(keys)
        if len(keys) < 5000:
            get, n = self._index.get, self._n
            out = np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
            out[out >= n] = -1
            return out
        import polars as pl

        table = self._table()
        frame = pl.DataFrame({"_k": pl.Series(keys, dtype=pl.String)})
        joined = frame.join(table, on="_k", how="left", maintain_order="left")
        return joined["_i"].fill_null(-1).to_numpy().astype(np.int64)

    def index_series(self, values: pl.Series) -> np.ndarray:
        """``index`` for a polars Series: a dict lookup when short, one join (cached table) when long."""
        import polars as pl

        if values.len() < 5000:
            return self.index(values.cast(pl.String).to_list())

        joined = pl.DataFrame({"_k": values.cast(pl.String)}).join(self._table(), on="_k", how="left",
                                                                     maintain_order="left")
        return joined["_i"].fill_null(-1).to_numpy().astype(np.int64)

    def take(self, idx: np.ndarray) -> pl.Series:
        """The ids at indices ``idx`` (all valid) as a polars String Series.

        Why: the candidate layer turns millions of (customer, item) index pairs into ids per batch;
        gathering from the cached polars column runs in Rust without the GIL, where an object array
        of Python strings converted to a Series cost ~0.1 s per 400k ids.
        """
        return self._table()["_k"].gather(np.asarray(idx, dtype=np.int64))

    def _table(self) -> pl.DataFrame:
        import polars as pl

        table: pl.DataFrame | None = self._pl_table
        if table is None:
            table = pl.DataFrame({"_k": pl.Series(self.ids.tolist(), dtype=pl.String),
                                  "_i": np.arange(self._n, dtype=np.int64)})
            self._pl_table = table
        return table

    def extend(self, keys: Iterable[str]) -> IdMap:
        """A map with unseen ``keys`` appended (indices of existing ids unchanged); ``self`` is unchanged.

        Amortised O(len(keys)) when ``self`` is the newest map of its buffer (the usual fold-in chain
        ``m = m.extend(...)``); otherwise the ids are copied once.
        """
        new = [k for k in dict.fromkeys(map(str, keys)) if k not in self]
        if not new:
            return self
        out = IdMap.__new__(IdMap)
        out._pl_table, out._grown = None, None
        end = self._n + len(new)
        for done in (self, self._grown):
            # another map sharing this one (a generator of the same bundle) already appended these ids
            if done is not None and done._group[0] >= end and list(done._buf[self._n: end]) == new:
                out._buf, out._n, out._index, out._group = done._buf, end, done._index, done._group
                return out
        if self._group[0] == self._n and end <= len(self._buf):  # the tip, with room: append in place
            buf, index, group = self._buf, self._index, self._group
        else:  # grow (doubling) or branch off an older map: copy once
            buf = np.empty(max(2 * end, 16), dtype=object)
            buf[: self._n] = self.ids
            index = {str(v): i for i, v in enumerate(self.ids)} if self._group[0] != self._n else dict(self._index)
            group = [self._n]
            if self._group[0] == self._n:
                self._grown = out
        buf[self._n: end] = np.array(new, dtype=object)
        for i, k in enumerate(new, start=self._n):
            index[k] = i
        group[0] = end
        out._buf, out._n, out._index, out._group = buf, end, index, group
        return out

    def to_numpy(self) -> np.ndarray:
        """Fixed-width unicode array: storable with ``np.savez`` and loadable with allow_pickle=False."""
        return self.ids.astype(str) if len(self.ids) else np.array([], dtype="<U1")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self.ids, other.ids)

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)})"

"""Small numpy passes the library shares across packages (rules, campaigns).

Private to ``recsys``: import from here rather than from another package's private module.
"""

from __future__ import annotations

import numpy as np

__all__ = ["in_sorted", "unique_sorted"]


def unique_sorted(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values.  ``np.unique`` (numpy 2.4) takes a hash path that is ~15× slower here."""
    if len(keys) == 0:
        return keys
    keys = np.sort(keys)
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return keys[first]


def in_sorted(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``np.isin(values, keys)`` for sorted distinct ``keys``, by binary search (no hashing, no copy)."""
    if len(keys) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    return keys[pos] == values

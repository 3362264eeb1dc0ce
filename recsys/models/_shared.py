"""Arrays that several models of one bundle hold identically, stored (and loaded) once.

Why: every generator keeps its own customer id map and most keep the customer × item purchase
structure (the CSR indices, last purchase times).  In a bundle of ``configs/train-hm.yaml`` at 10 % of
H&M, 129 MB of the 545 MB of generator files were such duplicates (the customer ids eight times, the
purchase indices seven times).  A bundle's save hashes each model's large arrays, writes those held by
two or more models once under ``shared/<digest>.npy`` and has each model's ``model.json`` name them;
loading reads each file once and hands the same array to every model that names it, so the memory is
shared too.

The shared arrays are made read-only: models treat their loaded base arrays as immutable (fold-in
writes overlay rows, merges build new arrays), and a write into an array another model also holds
would silently change that model — numpy raises instead.  Each model directory stays loadable on its
own (``model.json`` records the shared folder relative to itself).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recsys.models._packing import pack, unpack

__all__ = ["MIN_SHARED_BYTES", "SharedArrays", "digest", "plan_sharing"]

#: Arrays smaller than this stay in the model's own ``arrays.npz``.
MIN_SHARED_BYTES = 1 << 20


def digest(array: np.ndarray) -> str:
    """Content hash of an array: dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


def plan_sharing(states: Iterable[tuple[str, Mapping[str, np.ndarray]]]) -> dict[str, dict[str, str]]:
    """Per model, ``{array name: digest}`` of its arrays that another model (or another of its own
    arrays) holds identically; only arrays of at least ``MIN_SHARED_BYTES`` are considered.

    ``states`` may be a generator: each model's arrays are hashed and dropped before the next is built.
    """
    seen: dict[str, dict[str, str]] = {}
    for model, arrays in states:
        seen[model] = {name: digest(a) for name, a in arrays.items()
                       if a.nbytes >= MIN_SHARED_BYTES and a.dtype != object}
    counts = Counter(d for names in seen.values() for d in names.values())
    return {model: {name: d for name, d in names.items() if counts[d] > 1} for model, names in seen.items()}


class SharedArrays:
    """The ``shared/`` folder of one bundle: write each digest once, read each once (read-only)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._loaded: dict[str, np.ndarray] = {}

    def path(self, key: str) -> Path:
        """The file of the array stored under ``key``."""
        return self.root / f"{key}.npy"

    def write(self, key: str, array: np.ndarray) -> dict[str, Any] | None:
        """Write ``array`` packed (``recsys.models._packing``) once per key; returns the packing spec the
        reader passes back to ``read``."""
        stored, spec = pack(array)
        path = self.path(key)
        if not path.exists():  # the bundle folder is written atomically as a whole
            self.root.mkdir(parents=True, exist_ok=True)
            np.save(path, stored, allow_pickle=False)
        return spec

    def read(self, key: str, spec: dict[str, Any] | None = None) -> np.ndarray:
        """The array stored under ``key``, loaded once and made read-only, so every model that names it
        shares one copy (``spec`` undoes the packing ``write`` applied)."""
        array = self._loaded.get(key)
        if array is None:
            array = unpack(np.load(self.path(key), allow_pickle=False), spec)
            array.flags.writeable = False
            self._loaded[key] = array
        return array

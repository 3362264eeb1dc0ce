"""Lossless packing of a model's integer arrays on disk: the same values in fewer bytes.

Why: at H&M size the bundle's largest files are integer arrays held as ``int64`` because that is what
numpy's index arithmetic yields — CSR offsets below 2**31, item and customer positions below 2**17 and
2**21, timestamps in microseconds that are whole seconds.  Stored as ``int64`` they made the bundle
twice the 2 GiB a shop expects to copy to each serving replica.  ``pack`` stores ``(a - offset) // scale``
in the narrowest integer type that holds it, where ``scale`` is the largest power of ten dividing every
value (a whole-second timestamp in microseconds has scale 10**6), float arrays of whole numbers (epoch
seconds) the same way, and ASCII text (ids) as bytes; ``unpack`` restores the very same
array, dtype included, so nothing downstream sees a difference.  ``pack`` checks the round trip and
keeps the array as it is whenever anything would be lost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MIN_PACKED_BYTES", "pack", "unpack"]

#: Arrays smaller than this are stored as they are (the spec would cost more than it saves).
MIN_PACKED_BYTES = 1 << 16
_TYPES = (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32)


def _scale(values: np.ndarray) -> int:
    """The largest power of ten (up to 10**9) dividing every value of a non-empty int64 array."""
    scale = 1
    for _ in range(9):
        if np.any(values % (scale * 10)):
            break
        scale *= 10
    return scale


def pack(array: np.ndarray) -> tuple[np.ndarray, dict[str, Any] | None]:
    """``(stored, spec)``: ``spec`` is ``None`` when ``array`` is stored as it is.

    Integers as above; floats that are all whole numbers (epoch seconds) as those integers; text that is
    all ASCII (ids) as bytes, a quarter of numpy's four bytes per character.
    """
    if array.size == 0 or array.nbytes < MIN_PACKED_BYTES:
        return array, None
    if array.dtype.kind == "U":
        stored, spec = _pack_text(array)
    elif array.dtype.kind == "f":
        stored, spec = _pack_whole(array)
    elif array.dtype.kind in "iu" and array.dtype.itemsize > 1:
        stored, spec = _pack_ints(array)
    else:
        return array, None
    if spec is None or not np.array_equal(unpack(stored, spec), array):  # never store what does not come back
        return array, None
    return stored, spec


def _pack_text(array: np.ndarray) -> tuple[np.ndarray, dict[str, Any] | None]:
    try:
        return np.char.encode(array, "ascii"), {"dtype": array.dtype.str, "text": True}
    except UnicodeEncodeError:
        return array, None


def _pack_whole(array: np.ndarray) -> tuple[np.ndarray, dict[str, Any] | None]:
    if not np.isfinite(array).all() or np.abs(array).max() >= 2.0**53:
        return array, None
    whole = array.astype(np.int64)
    if not np.array_equal(whole, array):
        return array, None
    stored, spec = _pack_ints(whole)
    if spec is None or stored.dtype.itemsize >= array.dtype.itemsize:
        return array, None
    return stored, {**spec, "dtype": array.dtype.str}


def _pack_ints(array: np.ndarray) -> tuple[np.ndarray, dict[str, Any] | None]:
    lo, hi = int(array.min()), int(array.max())
    if array.dtype.kind == "u" and hi > np.iinfo(np.int64).max:
        return array, None
    values = array.astype(np.int64, copy=False)
    offset = 0 if lo >= 0 and hi <= np.iinfo(np.int32).max else lo
    shifted = values - offset if offset else values
    scale = _scale(shifted) if hi - offset > np.iinfo(np.uint16).max else 1
    if scale > 1:
        shifted = shifted // scale
    top = (hi - offset) // scale
    bottom = (lo - offset) // scale
    for kind in _TYPES:
        info = np.iinfo(kind)
        if info.min <= bottom and top <= info.max and np.dtype(kind).itemsize < array.dtype.itemsize:
            return shifted.astype(kind), {"dtype": array.dtype.str, "offset": offset, "scale": scale}
    return array, None


def unpack(stored: np.ndarray, spec: dict[str, Any] | None) -> np.ndarray:
    """The array ``pack`` was given (``spec is None``: ``stored`` itself)."""
    if spec is None:
        return stored
    if spec.get("text"):
        return stored.astype(np.dtype(spec["dtype"]))
    out = stored.astype(np.int64)
    if spec["scale"] != 1:
        out *= spec["scale"]
    if spec["offset"]:
        out += spec["offset"]
    return out.astype(np.dtype(spec["dtype"]), copy=False)

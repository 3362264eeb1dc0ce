"""Stable hashes for shards and holdout groups.

Why not ``hash()`` or polars' row hash: both change between processes or library versions, and a
shard or a control group must be the same on every machine, every day, for every re-run — a
customer who was in the control group must not be emailed by a re-run of the same run id.
BLAKE2b of the UTF-8 id is stable by definition and fast enough (≈1 µs per id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from recsys.exceptions import ConfigError

__all__ = ["stable_hash", "shard_mask", "holdout_mask", "parse_shard"]

_SEP = "\x1f"  # unit separator: cannot appear in a campaign name, and makes ("a", "bc") ≠ ("ab", "c")


def stable_hash(values: Sequence[str], salt: str = "") -> np.ndarray:
    """64-bit BLAKE2b hash of ``salt + value`` for every value (uint64)."""
    prefix = salt.encode() + _SEP.encode() if salt else b""
    blake = hashlib.blake2b
    return np.fromiter(
        (int.from_bytes(blake(prefix + str(v).encode(), digest_size=8).digest(), "little") for v in values),
        dtype=np.uint64,
        count=len(values),
    )


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"i/n"`` (1-based, ``1 <= i <= n``) → ``(i, n)``; ``None`` stays ``None``."""
    if text is None:
        return None
    if isinstance(text, tuple):
        i, n = text
    else:
        try:
            i_s, n_s = str(text).split("/")
            i, n = int(i_s), int(n_s)
        except ValueError:
            raise ConfigError(
                f"The 'shard' parameter must look like i/n (e.g. 2/8). Got {text!r} instead.") from None
    if not (isinstance(i, int) and isinstance(n, int) and n >= 1 and 1 <= i <= n):
        raise ConfigError(f"The 'shard' parameter must be i/n with 1 <= i <= n. Got {i}/{n} instead.")
    return i, n


def shard_mask(customer_ids: Sequence[str], shard: tuple[int, int] | None) -> np.ndarray:
    """True for customers in shard ``i`` of ``n``: ``hash(customer_id) mod n == i - 1``.

    The hash depends on the customer id only, so every campaign shards the base the same way and the
    ``n`` shards partition any audience exactly.
    """
    if shard is None or shard[1] == 1:
        return np.ones(len(customer_ids), dtype=bool)
    i, n = shard
    return stable_hash(customer_ids) % np.uint64(n) == np.uint64(i - 1)


def holdout_mask(customer_ids: Sequence[str], share: float, *, campaign: str, run_id: str) -> np.ndarray:
    """True for the control group: ``hash(campaign, run_id, customer_id) / 2**64 < share``."""
    if share <= 0 or len(customer_ids) == 0:
        return np.zeros(len(customer_ids), dtype=bool)
    u = stable_hash(customer_ids, salt=f"{campaign}{_SEP}{run_id}").astype(np.float64) / 2.0**64
    return u < share

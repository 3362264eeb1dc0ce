"""Time helpers every package shares (private to ``recsys``)."""

from __future__ import annotations

from datetime import datetime

import polars as pl

__all__ = ["newest"]


def newest(ts: pl.Series, default: datetime | None = None) -> datetime:
    """The newest timestamp of ``ts``; ``default`` when it has none (``ValueError`` without a default).

    Why a function: ``Series.max()`` is typed as any scalar, and an empty series gives ``None``; every
    caller wants a ``datetime`` or a clear choice of what an empty table means.
    """
    value = ts.max()
    if isinstance(value, datetime):
        return value
    if default is None:
        raise ValueError(f"no timestamp in {ts.name!r} to take the newest of")
    return default

"""Number formatting shared by the HTML and Markdown renderers.

Why one place: the same value must read identically in both outputs (and in the tests that look
for it), so every metric goes through ``metric()`` — four decimals, like ``recsys train`` prints.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["metric", "ratio", "count", "seconds", "share", "plain"]

DASH = "—"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def metric(value: float | None, digits: int = 4) -> str:
    """A ranking metric: ``0.1739``; missing → an em dash."""
    return DASH if _missing(value) else f"{value:.{digits}f}"


def ratio(value: float | None) -> str:
    """A ratio to a baseline: ``1.21×``."""
    return DASH if _missing(value) else f"{value:.2f}×"


def count(value: Any) -> str:
    """An integer count with thousands separators: ``13,941``."""
    if _missing(value):
        return DASH
    return f"{int(value):,}"


def seconds(value: Any) -> str:
    """A duration: ``3.14 s`` below ten seconds, ``42.0 s`` above; missing → an em dash."""
    if _missing(value):
        return DASH
    value = float(value)
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def share(value: Any) -> str:
    """A proportion in [0, 1] as a percentage: ``66.9 %``."""
    return DASH if _missing(value) else f"{100 * float(value):.1f} %"


def plain(value: Any) -> str:
    """Anything else, readable: floats with 4 significant digits, ints with separators."""
    if _missing(value):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value) or DASH
    if isinstance(value, dict):
        return "; ".join(f"{k}: {plain(v)}" for k, v in value.items()) or DASH
    return str(value)

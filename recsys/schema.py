"""The canonical frames every part of the engine speaks (see ../shared/DESIGN.md).

Why one module: loaders, the synthetic shop, models and the service must agree on column names
and dtypes; having them here once means a dtype change is one edit, and ``conform`` is the single
place that casts a frame into shape.
"""

from __future__ import annotations

from typing import Final, Literal

import polars as pl

__all__ = [
    "INTERACTIONS",
    "ITEMS",
    "CUSTOMERS",
    "EVENT_TYPES",
    "EventType",
    "REQUIRED",
    "empty_frame",
    "conform",
]

EventType = Literal["purchase", "cart", "view", "click", "impression"]
EVENT_TYPES: Final[tuple[str, ...]] = ("purchase", "cart", "view", "click", "impression")

INTERACTIONS: Final[dict[str, pl.DataType]] = {
    "customer_id": pl.String(),
    "item_id": pl.String(),
    "ts": pl.Datetime("us"),
    "quantity": pl.Float32(),
    "price": pl.Float64(),
    "order_id": pl.String(),
    "event": pl.String(),
}

ITEMS: Final[dict[str, pl.DataType]] = {
    "item_id": pl.String(),
    "category": pl.String(),
    "department": pl.String(),
    "brand": pl.String(),
    "name": pl.String(),
    "price": pl.Float64(),
    "in_stock": pl.Boolean(),
    "replenishable": pl.Boolean(),
}

CUSTOMERS: Final[dict[str, pl.DataType]] = {
    "customer_id": pl.String(),
    "email_consent": pl.Boolean(),
    "created_at": pl.Datetime("us"),
}

#: Columns a source must provide (after column mapping); everything else has a default.
REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "interactions": ("customer_id", "item_id", "ts"),
    "items": ("item_id",),
    "customers": ("customer_id",),
}

_SCHEMAS: Final[dict[str, dict[str, pl.DataType]]] = {
    "interactions": INTERACTIONS,
    "items": ITEMS,
    "customers": CUSTOMERS,
}


def empty_frame(table: Literal["interactions", "items", "customers"]) -> pl.DataFrame:
    """An empty frame with the canonical columns and dtypes of ``table``."""
    return pl.DataFrame(schema=_SCHEMAS[table])


def conform(frame: pl.DataFrame, table: Literal["interactions", "items", "customers"]) -> pl.DataFrame:
    """Cast ``frame`` to the canonical dtypes, adding defaulted columns; extra columns are kept last.

    Assumes values are already valid (validation happens in ``recsys.data``); this only fixes
    dtypes and column order so frames from different sources compare equal.
    """
    schema = _SCHEMAS[table]
    defaults: dict[str, pl.Expr] = {
        "quantity": pl.lit(1.0, pl.Float32),
        "event": pl.lit("purchase"),
        "in_stock": pl.lit(True),
        "email_consent": pl.lit(None, pl.Boolean),
    }
    exprs = []
    for name, dtype in schema.items():
        if name in frame.columns:
            exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(defaults.get(name, pl.lit(None)).cast(dtype).alias(name))
    extra = [c for c in frame.columns if c not in schema]
    return frame.select(*exprs, *[pl.col(c) for c in extra])

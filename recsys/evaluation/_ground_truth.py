"""Input normalisation for the metrics: served lists, purchases and the relevant sets per variant.

Why a separate module: the metric formulas (``metrics.py``) should read like the textbook and run on
two clean frames — ``(customer_id, pos, key)`` for what was served and ``(customer_id, key)`` for what
was relevant — whatever the variant.  Everything that decides *what counts* (padding, duplicates,
purchases only, "new to the customer", categories) lives here, once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

import polars as pl

from recsys.dataset import Dataset, purchases_only
from recsys.exceptions import ConfigError, SchemaError

Variant = Literal["all", "new", "category"]
VARIANTS: Final[tuple[str, ...]] = ("all", "new", "category")
PAD_ID: Final[str] = ""  # the padding id models write for "no candidate" (recsys.models.base.PAD_ID)

RECS_COLUMNS: Final[tuple[str, ...]] = ("customer_id", "rank", "item_id")


def check_k(name: str, k: object) -> int:
    """Validate a count parameter (``k``, ``ks``, ``n_catalogue``): an int ≥ 1, not a bool; returns it."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"The '{name}' parameter must be an int in [1, inf). Got {k!r} instead.")
    return k


def check_variants(variants: Iterable[str] | str) -> tuple[str, ...]:
    """Validate ``variants`` (one name, or a non-empty duplicate-free subset of ``VARIANTS``) into a tuple."""
    out = (variants,) if isinstance(variants, str) else tuple(variants)
    bad = [v for v in out if v not in VARIANTS]
    if not out or bad or len(set(out)) != len(out):
        raise ConfigError(
            f"The 'variants' parameter must be a non-empty, duplicate-free subset of {VARIANTS}. Got {out!r} instead."
        )
    return out


def purchases(name: str, data: Dataset | pl.DataFrame) -> pl.DataFrame:
    """``(customer_id, item_id)`` purchase lines of a ``Dataset`` or an interactions frame."""
    if isinstance(data, Dataset):
        frame = data.purchases
    elif isinstance(data, pl.DataFrame):
        missing = [c for c in ("customer_id", "item_id") if c not in data.columns]
        if missing:
            raise SchemaError(
                f"The '{name}' frame is missing required column(s) {missing}; it has {data.columns}.",
                source=name,
                column=missing[0],
            )
        frame = purchases_only(data)
    else:
        raise ConfigError(
            f"The '{name}' parameter must be a Dataset or a polars DataFrame. Got {type(data).__name__}."
        )
    return frame.select(pl.col("customer_id").cast(pl.String), pl.col("item_id").cast(pl.String))


def catalogue(items: pl.DataFrame | None, test: Dataset | pl.DataFrame) -> pl.DataFrame | None:
    """``(item_id, category)`` from ``items`` or, when absent, from a test ``Dataset``'s catalogue."""
    if items is None and isinstance(test, Dataset):
        items = test.items
    if items is None:
        return None
    if not isinstance(items, pl.DataFrame) or "item_id" not in items.columns:
        raise SchemaError(
            "The 'items' frame must be a polars DataFrame with an 'item_id' column.", source="items"
        )
    category = pl.col("category").cast(pl.String) if "category" in items.columns else pl.lit(None, pl.String)
    return items.select(pl.col("item_id").cast(pl.String), category.alias("category")).unique(
        "item_id", keep="first"
    )


def has_categories(items: pl.DataFrame | None) -> bool:
    """True when the catalogue has at least one non-null category (the ``category`` variant needs it)."""
    return items is not None and items.height > 0 and items["category"].null_count() < items.height


def customer_filter(customers: Iterable[str] | pl.Series | None) -> pl.Series | None:
    """The customers to evaluate as a String series, or ``None`` for all; a lone string is refused, since
    iterating it would silently mean its characters."""
    if customers is None:
        return None
    if isinstance(customers, pl.Series):
        return customers.cast(pl.String)
    if isinstance(customers, str):
        raise ConfigError("The 'customers' parameter must be a collection of customer ids, not one string.")
    return pl.Series("customer_id", list(customers), dtype=pl.String)


def served(recs: pl.DataFrame, k: int) -> pl.DataFrame:
    """Validated top-``k`` served lists as ``(customer_id, pos, item_id)``, ``pos`` = 1..len per customer.

    ``rank`` only orders a customer's list: ranks with gaps (items a rule removed) are closed up, so
    ``pos`` is the position the customer actually saw.  Padding (``item_id`` null or ``""``) is
    dropped.  A repeated item or a repeated rank in one list is an error: a served list cannot
    show the same item twice, and a repeated rank has no defined order.
    """
    if not isinstance(recs, pl.DataFrame):
        raise ConfigError(f"The 'recs' parameter must be a polars DataFrame. Got {type(recs).__name__}.")
    missing = [c for c in RECS_COLUMNS if c not in recs.columns]
    if missing:
        raise SchemaError(
            f"The 'recs' frame is missing required column(s) {missing}; expected {list(RECS_COLUMNS)}, "
            f"got {recs.columns}.",
            source="recs",
            column=missing[0],
        )
    if not recs.schema["rank"].is_integer():
        raise SchemaError(
            f"The 'recs' column 'rank' must be an integer. Got {recs.schema['rank']}.",
            source="recs",
            column="rank",
        )
    frame = recs.select(
        pl.col("customer_id").cast(pl.String),
        pl.col("rank").cast(pl.Int64),
        pl.col("item_id").cast(pl.String),
    ).filter(pl.col("item_id").is_not_null() & (pl.col("item_id") != PAD_ID))
    bad = frame.filter(pl.col("customer_id").is_null() | pl.col("rank").is_null())
    if bad.height:
        raise SchemaError(
            f"The 'recs' frame has {bad.height} row(s) with a null customer_id or rank.", source="recs"
        )
    for cols, what in ((["customer_id", "item_id"], "item"), (["customer_id", "rank"], "rank")):
        dup = frame.filter(pl.struct(cols).is_duplicated())
        if dup.height:
            first = dup.row(0, named=True)
            raise SchemaError(
                f"The 'recs' frame repeats an {what} within one customer's list ({dup.height} rows), e.g. "
                f"customer_id={first['customer_id']!r}, rank={first['rank']}, item_id={first['item_id']!r}; "
                "a served list must list each item once, at distinct ranks.",
                source="recs",
                column=cols[1],
                count=dup.height,
            )
    return (
        frame.sort("customer_id", "rank")
        .with_columns(pos=(pl.int_range(pl.len(), dtype=pl.Int64).over("customer_id") + 1))
        .filter(pl.col("pos") <= k)
        .select("customer_id", "pos", "item_id")
    )


def relevant(
    variant: str, test_p: pl.DataFrame, train_p: pl.DataFrame | None, items: pl.DataFrame | None
) -> pl.DataFrame:
    """Distinct ``(customer_id, key)`` pairs that count as hits for ``variant``.

    * ``all``: every item bought in the test window;
    * ``new``: those items minus every item the customer bought before the cut-off;
    * ``category``: categories bought in the test window that the customer never bought before.

    ``train_p`` may be restricted to the customers in ``test_p`` beforehand (nobody else matters).
    """
    test_items = test_p.lazy().select("customer_id", key="item_id").unique()
    if variant == "all":
        return test_items.collect()
    assert train_p is not None
    train_items = train_p.lazy().select("customer_id", key="item_id")
    if variant == "new":
        return test_items.join(train_items, on=["customer_id", "key"], how="anti").collect()
    assert items is not None
    cats = items.lazy().filter(pl.col("category").is_not_null()).select("item_id", "category")
    test_c = (
        test_p.lazy().join(cats, on="item_id", how="inner").select("customer_id", key="category").unique()
    )
    train_c = train_p.lazy().join(cats, on="item_id", how="inner").select("customer_id", key="category")
    return test_c.join(train_c, on=["customer_id", "key"], how="anti").collect()


def served_keys(variant: str, lists: pl.DataFrame, items: pl.DataFrame | None) -> pl.DataFrame:
    """``(customer_id, pos, item_pos, key)``: what was served, in the units ``variant`` scores.

    For items ``key = item_id`` and ``pos = item_pos``.  For categories the list is the ordered
    distinct categories of the served items (first occurrence kept, unknown categories skipped);
    ``pos`` is the position in that category list and ``item_pos`` the position of the item that
    first brought the category in (used to cut the list at k items).
    """
    if variant != "category":
        return lists.select("customer_id", "pos", item_pos="pos", key="item_id")
    assert items is not None
    return (
        lists.join(items, on="item_id", how="left")
        .filter(pl.col("category").is_not_null())
        .sort("customer_id", "pos")
        .unique(["customer_id", "category"], keep="first", maintain_order=True)
        .with_columns(new_pos=pl.int_range(pl.len(), dtype=pl.Int64).over("customer_id") + 1)
        .select("customer_id", pos="new_pos", item_pos="pos", key="category")
    )

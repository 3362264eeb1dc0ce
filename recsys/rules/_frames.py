"""Between polars frames and the rules' integer codes, both ways: check and encode what comes in
(candidates, purchases, due items), assemble the final lists that go out.

Why its own module: ``RuleSet`` works on integer codes (customer position, catalogue index) and
numpy arrays; everything about ids, columns and dtypes happens here.  Small inputs (a web request)
take dict look-ups and Python lists, large ones (a batch) polars joins and gathers: above ``SMALL``
rows a polars call's fixed cost no longer dominates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import polars as pl

from recsys._arrays import unique_sorted
from recsys.exceptions import ConfigError, SchemaError
from recsys.rules._catalogue import CatalogueIndex
from recsys.rules._select import KIND_CANDIDATE, KIND_PINNED, KIND_POPULAR, KIND_TRENDING

__all__ = [
    "DEFAULT_REASON",
    "SMALL",
    "best_first",
    "build_output",
    "check_n",
    "codes",
    "customer_order",
    "due_item_keys",
    "empty_output",
    "encode_history",
    "history_arrays",
    "require",
    "output_score_dtype",
]

#: Above this many rows, ids are mapped with polars joins instead of Python dict look-ups.
SMALL: Final = 4096
_REASON: Final[dict[int, str]] = {
    KIND_PINNED: "pinned", KIND_TRENDING: "trending_in_category", KIND_POPULAR: "popular",
}
#: reason_type of candidates when ``ranked`` has no reason_type column.
DEFAULT_REASON: Final = "ranked"


def require(frame: pl.DataFrame, name: str, columns: Sequence[str]) -> None:
    """``SchemaError`` naming ``name`` and the column unless ``frame`` is a DataFrame with ``columns``."""
    if not isinstance(frame, pl.DataFrame):
        raise SchemaError(f"{name}: expected a polars DataFrame, got {type(frame).__name__}", source=name)
    for col in columns:
        if col not in frame.columns:
            raise SchemaError(f"{name}: missing required column '{col}' (has {frame.columns})",
                              source=name, column=col)


def check_n(n: object, method: str) -> None:
    """Validate the list length ``n`` of ``RuleSet.<method>`` (an int ≥ 0, not a bool)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"The 'n' parameter of RuleSet.{method} must be an int in [0, inf). "
                          f"Got {n!r} instead.")


def customer_order(customer_ids: Sequence[str] | None, ranked_cust: pl.Series) -> list[str]:
    """Output order of the customers: ``customer_ids`` first (each gets a list, candidates or not), then
    any other customer of ``ranked`` in order of first appearance."""
    order: dict[str, None] = dict.fromkeys(str(c) for c in customer_ids or () if c is not None)
    if ranked_cust.len() <= SMALL:
        order.update(dict.fromkeys(ranked_cust.to_list()))
    else:
        order.update(dict.fromkeys(ranked_cust.unique(maintain_order=True).to_list()))
    return list(order)


def codes(values: pl.Series, mapping: dict[str, int], frame: pl.DataFrame | None) -> np.ndarray:
    """Integer code of each value (-1 when unknown): dict look-ups when small, a polars join when large."""
    if values.len() <= SMALL:
        get = mapping.get
        return np.fromiter((get(v, -1) for v in values.to_list()), dtype=np.int64, count=values.len())
    if frame is None:
        frame = pl.DataFrame({"item_id": list(mapping), "_idx": list(mapping.values())},
                             schema={"item_id": pl.String, "_idx": pl.Int64})
    joined = values.alias("item_id").to_frame().join(frame, on="item_id", how="left", maintain_order="left")
    return joined["_idx"].fill_null(-1).to_numpy().astype(np.int64, copy=False)


def encode_history(history: pl.DataFrame | None, customers: list[str], cust_code: dict[str, int],
                    cat: CatalogueIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customer code, item index, ts in µs, unit price or NaN) of known purchases of our customers.

    Works on numpy/lists rather than polars expressions: each expression costs a query plan, which
    would dominate a one-customer request.
    """
    empty = np.zeros(0, dtype=np.int64)
    if history is None or history.height == 0:
        return empty, empty, empty, np.zeros(0)
    require(history, "history", ("customer_id", "item_id", "ts"))
    h = history
    if h.height > SMALL:  # e.g. a whole purchase table: cut it to our customers first
        h = h.filter(pl.col("customer_id").is_in(pl.Series(customers, dtype=pl.String).implode()))
    if len(customers) == 1 and h.height <= SMALL:  # the web request: compare instead of hashing
        same = np.asarray(h["customer_id"].cast(pl.String).to_list(), dtype=object) == customers[0]
        hc = np.where(same, 0, -1).astype(np.int64)
    else:
        hc = codes(h["customer_id"].cast(pl.String), cust_code, None)
    hi = codes(h["item_id"].cast(pl.String), cat.index, cat.index_frame)
    return history_arrays(h, hc, hi)


def history_arrays(h: pl.DataFrame, hc: np.ndarray,
                    hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The purchase lines of ``h`` with a customer code and an item index (``hc``, ``hi`` ≥ 0), a time and
    a purchase event: ``(customer code, item index, ts in µs UTC, unit price or NaN)``."""
    ts = h["ts"]
    if ts.dtype != pl.Datetime("us"):
        if isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is not None:
            ts = ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        ts = ts.cast(pl.Datetime("us"))
    hts = ts.to_numpy().view(np.int64)
    price = h["price"].cast(pl.Float64).to_numpy() if "price" in h.columns else np.full(h.height, np.nan)
    m = (hc >= 0) & (hi >= 0) & (hts != np.iinfo(np.int64).min)
    if "event" in h.columns:
        ev = h["event"].cast(pl.String)
        if ev.len() <= SMALL:
            m &= np.fromiter((e is None or e == "purchase" for e in ev.to_list()), dtype=bool, count=ev.len())
        else:
            m &= (ev.is_null() | (ev == "purchase")).to_numpy()
    return hc[m], hi[m], hts[m], price[m]


def due_item_keys(replenish_due: pl.DataFrame | None, cust_code: dict[str, int], cat: CatalogueIndex,
              replen_ok: np.ndarray, N: int) -> np.ndarray:
    """Sorted ``customer code × N + item index`` keys of the replenishable items marked due: they are
    exempt from the recently-bought exclusion."""
    if replenish_due is None or replenish_due.height == 0:
        return np.zeros(0, dtype=np.int64)
    require(replenish_due, "replenish_due", ("customer_id", "item_id", "due"))
    d = replenish_due.filter(pl.col("due").fill_null(False).cast(pl.Boolean))
    dc = codes(d["customer_id"].cast(pl.String), cust_code, None)
    di = codes(d["item_id"].cast(pl.String), cat.index, cat.index_frame)
    m = (dc >= 0) & (di >= 0)
    dc, di = dc[m], di[m]
    m = replen_ok[di]
    return unique_sorted(dc[m] * N + di[m])


def best_first(cust: np.ndarray, neg_score: np.ndarray, id_rank: np.ndarray) -> np.ndarray:
    """Row order by customer, score descending, item id, then input row (a total, deterministic order)."""
    if len(cust) <= SMALL:
        return np.lexsort((id_rank, neg_score, cust))  # lexsort is stable: input row breaks the last ties
    frame = pl.DataFrame({"c": cust, "s": neg_score, "r": id_rank})
    return frame.select(pl.arg_sort_by(["c", "s", "r"], maintain_order=True)).to_series().to_numpy()


def build_output(ranked: pl.DataFrame, customers: list[str], lengths: list[int],
                 picks: list[tuple[int, int, int, float | None]], cat: CatalogueIndex) -> pl.DataFrame:
    """Assemble the result; candidate rows take reason and source from their row of ``ranked``.

    Small results avoid polars gathers and per-column Series construction: a gather runs on
    polars' thread pool, which under CPU contention costs milliseconds for a dozen rows, and a
    row-oriented build is cheaper than seven Series for a dozen rows.
    """
    score_dtype = output_score_dtype(ranked)
    ts_dtype = ranked.schema.get("source_ts", pl.Datetime("us"))
    total = len(picks)
    src_row = [p[2] if p[1] == KIND_CANDIDATE else None for p in picks]
    reason: list[str | None] | pl.Series
    if "reason_type" in ranked.columns and total > SMALL:
        # a gather of the picked rows, not a Python list of every candidate's reason
        kinds = pl.Series([_REASON.get(p[1]) for p in picks], dtype=pl.String)
        reason = ranked["reason_type"].cast(pl.String).gather(pl.Series(src_row, dtype=pl.UInt32)) \
            .fill_null(kinds)
    elif "reason_type" in ranked.columns:
        reasons = ranked["reason_type"].cast(pl.String).to_list()
        reason = [reasons[r] if r is not None else _REASON[p[1]] for r, p in zip(src_row, picks)]
    else:
        reason = [DEFAULT_REASON if r is not None else _REASON[p[1]] for r, p in zip(src_row, picks)]
    cust_col = [c for c, m in zip(customers, lengths) for _ in range(m)]
    rank_col = [r for m in lengths for r in range(1, m + 1)]
    item_ids = cat.item_ids
    item_col = [item_ids[p[0]] for p in picks]
    score_col = [p[3] for p in picks]
    has_src_item = "source_item_id" in ranked.columns and ranked.height > 0
    has_src_ts = "source_ts" in ranked.columns and ranked.height > 0
    src_ts = pl.Series("source_ts", [None] * total, dtype=ts_dtype)
    if total <= SMALL:
        if has_src_item:
            values = ranked["source_item_id"].cast(pl.String).to_list()
            src_item_col = [values[r] if r is not None else None for r in src_row]
        else:
            src_item_col = [None] * total
        if has_src_ts and isinstance(ts_dtype, pl.Datetime) and ts_dtype.time_zone is None:
            at = np.fromiter((r if r is not None else 0 for r in src_row), dtype=np.int64, count=total)
            ts = ranked["source_ts"].to_numpy()[at]
            ts[np.fromiter((r is None for r in src_row), dtype=bool, count=total)] = np.datetime64("NaT")
            src_ts = pl.Series("source_ts", ts).cast(ts_dtype)
        elif has_src_ts:
            src_ts = ranked["source_ts"].to_frame()[pl.Series(src_row, dtype=pl.UInt32)].to_series()
        frame = pl.DataFrame(
            list(zip(cust_col, rank_col, item_col, score_col, reason, src_item_col)), orient="row",
            schema={"customer_id": pl.String, "rank": pl.Int32, "item_id": pl.String,
                    "score": score_dtype, "reason_type": pl.String, "source_item_id": pl.String},
        )
        frame.insert_column(6, src_ts)
        return frame
    src_item = pl.Series("source_item_id", [None] * total, dtype=pl.String)
    present = [c for c, ok in (("source_item_id", has_src_item), ("source_ts", has_src_ts)) if ok]
    if present:
        gathered = ranked[present][pl.Series(src_row, dtype=pl.UInt32)]
        if has_src_item:
            src_item = gathered["source_item_id"].cast(pl.String)
        if has_src_ts:
            src_ts = gathered["source_ts"].cast(ts_dtype)
    return pl.DataFrame([
        pl.Series("customer_id", cust_col, dtype=pl.String),
        pl.Series("rank", rank_col, dtype=pl.Int32),
        pl.Series("item_id", item_col, dtype=pl.String),
        pl.Series("score", score_col, dtype=pl.Float64).cast(score_dtype),
        pl.Series("reason_type", reason, dtype=pl.String),
        src_item,
        src_ts,
    ])


def output_score_dtype(ranked: pl.DataFrame) -> pl.DataType | type[pl.DataType]:
    """Output scores keep the ranker's float width (Float32 stays Float32); anything else is Float64."""
    dtype = ranked.schema.get("score", pl.Float64)
    return dtype if dtype in (pl.Float32, pl.Float64) else pl.Float64


def empty_output(ranked: pl.DataFrame) -> pl.DataFrame:
    """An output frame with no rows and the usual columns (score and ``source_ts`` dtypes as ``ranked``'s)."""
    score_dtype = output_score_dtype(ranked)
    return pl.DataFrame(schema={
        "customer_id": pl.String, "rank": pl.Int32, "item_id": pl.String, "score": score_dtype,
        "reason_type": pl.String, "source_item_id": pl.String,
        "source_ts": ranked.schema.get("source_ts", pl.Datetime("us")),
    })

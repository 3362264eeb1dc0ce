"""Batch lists for many customers, streamed to one Parquet (or CSV) file in bounded memory.

Why streamed: at shop scale (1.4M customers × 12 picks = 17M rows) the lists fit in memory but their
candidate frames do not; each batch's lists are written as one Parquet row group and dropped, so peak
memory is one batch's candidates whatever the number of customers.  Why atomic: schedulers pick up
whatever file sits at ``out``; a run killed half-way must leave the previous file (or none), never a
truncated one, so rows go to a hidden temporary sibling that replaces ``out`` only when complete.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
from tqdm.auto import tqdm

from recsys._io import atomic_write
from recsys.baselines import popular_items
from recsys.models.popularity import Popularity
from recsys.ranking.hybrid import HybridRecommender
from recsys.reasons import with_reason_text

__all__ = ["BatchSummary", "recommend_batches", "write_recommendations", "OUTPUT_COLUMNS", "OUTPUT_SCHEMA",
           "explain_lists"]

log = logging.getLogger(__name__)

#: The columns of ``recsys recommend``'s file: a contract with the tools that read it (new columns are
#: added, none renamed).  ``reason_text`` is the service's wording (``recsys.reasons``), ``source_date``
#: the day of the purchase behind the reason, ``due_date`` the predicted next purchase of a buy-again item.
OUTPUT_COLUMNS = ("customer_id", "rank", "item_id", "score", "reason_type", "reason_text", "source_item_id",
                  "source_date", "due_date")
#: Their dtypes (an empty file still has them).
OUTPUT_SCHEMA = {"customer_id": pl.String, "rank": pl.Int32, "item_id": pl.String, "score": pl.Float32,
                 "reason_type": pl.String, "reason_text": pl.String, "source_item_id": pl.String,
                 "source_date": pl.Date, "due_date": pl.Date}


@dataclass(frozen=True)
class BatchSummary:
    """What one batch file write did: rows and customers written, wall time, and the file."""

    rows: int
    customers: int
    seconds: float
    path: Path

    @property
    def per_second(self) -> float:
        """Customers per second (guarded against a zero duration), for the log line."""
        return self.customers / max(self.seconds, 1e-9)


def _fallback(hybrid: HybridRecommender, n: int) -> pl.DataFrame:
    pop = hybrid.generators.get("popularity")
    if not isinstance(pop, Popularity):
        return pl.DataFrame(schema={"item_id": pl.String, "score": pl.Float64})
    popular = popular_items(pop, n * 3)
    return pl.DataFrame({"item_id": popular, "score": [float(len(popular) - i) for i in range(len(popular))]})


def explain_lists(lists: pl.DataFrame, hybrid: HybridRecommender, names: Mapping[str, str | None], *,
                  now: datetime | None = None) -> pl.DataFrame:
    """Final lists (``HybridRecommender.recommend``) as ``OUTPUT_COLUMNS``: the reason in words, the
    source purchase's day and, for buy-again items, the day the customer is predicted to buy it next
    (``BuyAgain.due_dates``; null for other reasons or without a buy-again model)."""
    out = with_reason_text(lists, names).with_columns(pl.col("source_ts").cast(pl.Date).alias("source_date"))
    ba = hybrid.buy_again
    again = out.filter(pl.col("reason_type") == "buy_again")
    if ba is None or again.height == 0:
        return out.with_columns(pl.lit(None, pl.Date).alias("due_date")).select(OUTPUT_COLUMNS)
    due = ba.due_dates(again["customer_id"].unique(maintain_order=True).to_list(), at=now)
    due = due.select("customer_id", "item_id", pl.col("due_ts").cast(pl.Date).alias("due_date"),
                     pl.lit("buy_again").alias("reason_type"))
    return out.join(due, on=["customer_id", "item_id", "reason_type"], how="left",
                    maintain_order="left").select(OUTPUT_COLUMNS)


def recommend_batches(
    hybrid: HybridRecommender,
    customer_ids: Sequence[str],
    n: int,
    *,
    new_only: bool = False,
    batch: int = 10_000,
    now: datetime | None = None,
    progress: bool = True,
    names: Mapping[str, str | None] | None = None,
) -> Iterator[pl.DataFrame]:
    """Yield each batch's final lists (``OUTPUT_COLUMNS``), in the order of ``customer_ids``.

    ``names``: item id → display name for ``reason_text`` (``recsys.reasons.item_names`` of the bundle's
    catalogue); without it items are named by id.
    """
    fallback = _fallback(hybrid, n)
    steps = range(0, len(customer_ids), batch)
    with tqdm(total=len(customer_ids), desc="recommend", unit="customer", unit_scale=True,
              disable=not progress) as bar:
        for start in steps:
            chunk = list(customer_ids[start:start + batch])
            lists = hybrid.recommend(chunk, n, now=now, exclude_bought=new_only, fallback=fallback)
            yield explain_lists(lists, hybrid, names or {}, now=now)
            bar.update(len(chunk))


def write_recommendations(
    frames: Iterator[pl.DataFrame],
    out: str | Path,
    *,
    customers: int,
) -> BatchSummary:
    """Stream ``frames`` into ``out`` (``.csv`` → CSV, anything else → Parquet, one row group per frame),
    atomically: the file appears only when every frame is written."""
    import pyarrow.parquet as pq

    out = Path(out)
    t0 = time.perf_counter()
    rows = 0

    def stream(tmp: Path) -> None:
        nonlocal rows
        writer: pq.ParquetWriter | None = None
        with open(tmp, "wb") as fh:
            try:
                for i, frame in enumerate(frames):
                    if out.suffix == ".csv":
                        frame.write_csv(fh, include_header=i == 0)
                    else:
                        table = frame.to_arrow()
                        if writer is None:
                            writer = pq.ParquetWriter(fh, table.schema, compression="zstd")
                        writer.write_table(table)
                    rows += frame.height
                if writer is None and out.suffix != ".csv":  # no customers: still a valid, empty file
                    pl.DataFrame(schema=OUTPUT_SCHEMA).write_parquet(fh)
            finally:
                if writer is not None:
                    writer.close()
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(out, stream)
    summary = BatchSummary(rows, customers, time.perf_counter() - t0, out)
    log.info("wrote %d rows for %d customers to %s in %.1fs (%.0f customers/s)", rows, customers, out,
             summary.seconds, summary.per_second)
    return summary

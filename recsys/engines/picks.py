"""All customers' picks as a Ray Data job: blocks of customer ids → ``recommend_batches`` in a worker
that loaded the bundle once → Parquet parts written by the driver into one folder, atomically.

Why the driver writes the parts: workers then need no shared writable storage (their outputs come
back through the object store, ~70 bytes a row: 17M rows for 1.4M customers is ~1 GB streamed), and
the folder appears complete or not at all (``atomic_dir``: a staging folder renamed into place), as
the local engine's single file does.  Block ``k`` holds the ``k``-th slice of the ids, so the parts
read in name order are the local file's rows in the local file's order.

Scoring is ``recsys.batch.recommend_batches``, the local engine's own function: one code path.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from recsys._io import atomic_dir
from recsys.batch import OUTPUT_COLUMNS, OUTPUT_SCHEMA, BatchSummary, recommend_batches
from recsys.engines._ray import BlockWorker, BundleSource, ClusterInfo, EngineError, run_blocks
from recsys.history import PurchaseHistory
from recsys.reasons import item_names

__all__ = ["PicksWorker", "block_slices", "bundle_customer_ids", "read_parts", "recommend_ray"]

log = logging.getLogger(__name__)

_EMPTY = OUTPUT_SCHEMA


class PicksWorker(BlockWorker):
    """One per worker process: loads the bundle once, then scores each block it is handed."""

    def __init__(self, *, source: BundleSource, n: int, new_only: bool, batch: int,
                 now: datetime | None) -> None:
        from recsys.bundle import Bundle

        with source.local() as folder:
            bundle = Bundle.load(folder)
        self.hybrid = bundle.hybrid
        self.names = item_names(bundle.catalogue)
        self.n, self.new_only, self.batch, self.now = n, new_only, batch, now

    def block(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The output rows of one block of customers, as ``recommend_batches`` writes them locally."""
        ids = frame["customer_id"].to_list()
        parts = list(recommend_batches(self.hybrid, ids, self.n, new_only=self.new_only, batch=self.batch,
                                       now=self.now, progress=False, names=self.names))
        return pl.concat(parts) if parts else pl.DataFrame(schema=_EMPTY)


def bundle_customer_ids(bundle_dir: str | Path) -> list[str]:
    """Every customer a stored bundle knows, in its order (``--all``), without loading the models."""
    return PurchaseHistory.load(Path(bundle_dir) / "history.parquet").customers.ids.tolist()


def block_slices(n_ids: int, *, batch: int, workers: int) -> list[slice]:
    """Consecutive slices of at most ``batch`` ids, and at least two per worker when there are enough
    ids (a worker that dies costs one block, and the last blocks do not leave workers idle)."""
    if n_ids == 0:
        return []
    size = max(1, min(batch, -(-n_ids // (2 * workers))))
    return [slice(s, min(s + size, n_ids)) for s in range(0, n_ids, size)]


def recommend_ray(
    cluster: ClusterInfo,
    source: BundleSource,
    customer_ids: Sequence[str],
    n: int,
    out: str | Path,
    *,
    new_only: bool = False,
    batch: int = 10_000,
    now: datetime | None = None,
    model_version: str | None = None,
    worker: type[PicksWorker] = PicksWorker,
) -> BatchSummary:
    """Write every customer's ``n`` picks into the folder ``out`` (``part-00000.parquet``, …, in customer
    order, plus ``_manifest.json``); the folder replaces ``out`` only when every block is written.

    Parameters
    ----------
    cluster
        From ``ray_cluster``: its ``workers`` worker processes score the blocks.
    source
        Where workers read the bundle (``BundleSource``).
    batch
        Customers per block at most (and per ``recommend_batches`` batch inside a block).
    worker
        The per-worker class (a subclass may add instrumentation; tests kill one mid-job).
    """
    out = Path(out)
    if out.suffix == ".csv":
        raise EngineError(f"--out {out}: --engine ray writes a folder of Parquet parts, not CSV")
    ids = list(customer_ids)
    slices = block_slices(len(ids), batch=batch, workers=cluster.workers)
    blocks = [pl.DataFrame({"customer_id": ids[s]}, schema={"customer_id": pl.String}) for s in slices]
    t0 = time.perf_counter()
    rows, parts = 0, 0
    with atomic_dir(out) as tmp:
        writer: Any = None
        current = -1
        try:
            for k, frame in run_blocks(blocks, worker, workers=cluster.workers, ctor_kwargs={
                    "source": source, "n": n, "new_only": new_only, "batch": batch, "now": now}):
                if k != current:
                    _close(writer)
                    writer, current = _open(tmp / f"part-{k:05d}.parquet", frame), k
                    parts += 1
                writer.write_table(frame.select(OUTPUT_COLUMNS).to_arrow())
                rows += frame.height
        finally:
            _close(writer)
        if parts == 0:
            pl.DataFrame(schema=_EMPTY).write_parquet(tmp / "part-00000.parquet")
        seconds = time.perf_counter() - t0
        (tmp / "_manifest.json").write_text(json.dumps({
            "engine": "ray", "model_version": model_version, "rows": rows, "customers": len(ids),
            "blocks": len(blocks), "parts": max(parts, 1), "workers": cluster.workers, "n": n,
            "new_only": new_only, "seconds": round(seconds, 3), "columns": list(OUTPUT_COLUMNS),
        }, indent=2))
    summary = BatchSummary(rows, len(ids), time.perf_counter() - t0, out)
    log.info("ray: wrote %d rows for %d customers in %d parts to %s in %.1fs (%.0f customers/s)", rows,
             len(ids), parts, out, summary.seconds, summary.per_second)
    return summary


def _open(path: Path, frame: pl.DataFrame) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetWriter(path, frame.select(OUTPUT_COLUMNS).to_arrow().schema, compression="zstd")


def _close(writer: Any) -> None:
    if writer is not None:
        writer.close()


def read_parts(folder: str | Path) -> pl.DataFrame:
    """The rows of a ``recommend_ray`` folder in customer order (the parts in name order)."""
    files = sorted(Path(folder).glob("part-*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame(schema=_EMPTY)

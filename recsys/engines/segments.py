"""The segment table with churn risk and expected value scored on Ray, blocks of customers at a time.

What runs where: fitting the churn and CLV models (a time split over every customer) and the RFM
scores and lifecycle stages (quantile ranks over every customer) stay on the driver; what is per
customer — cut-off features and the models' predictions, the costly part — runs in workers that load
the two fitted models once (data-only folders, ``BundleSource``).  Each block holds *all* the purchase
lines of its customers, and the shop's first purchase travels with it (``start_lag_days`` is measured
from it), so every customer's features and scores are what the local run computes.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import polars as pl

from recsys.dataset import Dataset
from recsys.engines._ray import BlockWorker, BundleSource, ClusterInfo, run_blocks
from recsys.engines.picks import block_slices
from recsys.segments import CLVModel, ChurnModel, purchase_lines, segments
from recsys.segments._lines import resolve_now

__all__ = ["ScoreWorker", "segments_ray"]

_SCORES = {"customer_id": pl.String, "churn_risk": pl.Float64, "expected_clv": pl.Float64}


class ScoreWorker(BlockWorker):
    """Loads the fitted models once; scores the customers whose purchase lines make up a block."""

    def __init__(self, *, churn: BundleSource | None, clv: BundleSource | None, now: datetime,
                 start: datetime) -> None:
        self.models: dict[str, ChurnModel | CLVModel] = {}
        for name, src, cls in (("churn_risk", churn, ChurnModel), ("expected_clv", clv, CLVModel)):
            if src is not None:
                with src.local() as folder:
                    self.models[name] = cls.load(folder)
        self.now, self.start = now, start

    def block(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Churn risk and expected CLV of the customers in one block of purchase lines (null columns for a
        model not given)."""
        out = frame.select("customer_id").unique().sort("customer_id")
        for name, model in self.models.items():
            feats, value = model.predict_lines(frame, self.now, start=self.start)
            out = out.join(feats.select("customer_id").with_columns(pl.Series(name, value, dtype=pl.Float64)),
                           on="customer_id", how="left")
        for name in ("churn_risk", "expected_clv"):
            if name not in out.columns:
                out = out.with_columns(pl.lit(None, pl.Float64).alias(name))
        return out.select(list(_SCORES))


def segments_ray(cluster: ClusterInfo, data: Dataset, *, churn: ChurnModel | None, clv: CLVModel | None,
                 now: datetime | None = None, via: str = "object-store", block_customers: int = 50_000,
                 **options: object) -> pl.DataFrame:
    """``recsys.segments.segments`` with the churn and CLV scoring in blocks on ``cluster``.

    Parameters
    ----------
    via
        How workers get the fitted models: ``object-store`` (default; they are small) or ``path``
        (a temporary folder on this machine: a one-machine cluster only).
    block_customers
        Customers per block at most (at least two blocks per worker when there are enough).
    options
        ``segments``' other keyword options (``bins``, ``churn_bands``, ``lifecycle_options``).
    """
    lines = purchase_lines(data)
    now = resolve_now(lines, now)
    scores = pl.DataFrame(schema=_SCORES)
    if lines.height and (churn is not None or clv is not None):
        start = lines["ts"].min()
        ids = lines["customer_id"].unique().sort().to_list()
        slices = block_slices(len(ids), batch=block_customers, workers=cluster.workers)
        keyed = lines.join(pl.DataFrame({"customer_id": ids, "_k": range(len(ids))},
                                        schema={"customer_id": pl.String, "_k": pl.Int64}), on="customer_id",
                           maintain_order="left")
        blocks = [keyed.filter(pl.col("_k").is_between(s.start, s.stop - 1)).drop("_k") for s in slices]
        with tempfile.TemporaryDirectory(prefix="recsys-segment-models-") as tmp:
            sources = {}
            for name, model in (("churn", churn), ("clv", clv)):
                sources[name] = None if model is None else BundleSource.of(model.save(Path(tmp) / name), via=via)
            parts = [out for _, out in run_blocks(blocks, ScoreWorker, workers=cluster.workers, ctor_kwargs={
                **sources, "now": now, "start": start})]
        scores = pl.concat(parts) if parts else scores
    return segments(data, now=now, churn=churn, clv=clv, scores=scores, **options)  # type: ignore[arg-type]

"""``bench/segment_features.py``: the segment columns see only the past, and adding them changes nothing else
in the candidate frame (same rows, same order, same feature values), so WITH vs WITHOUT is a paired comparison."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from recsys.bundle import Bundle
from recsys.dataset import Dataset
from recsys.segments import segments

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(load_bench: Any) -> Any:
    return load_bench("segment_features")


def test_ordinals_ignore_purchases_after_now_and_follow_the_segment_labels(bench: Any, tiny: Dataset) -> None:
    now = tiny.interactions["ts"].min() + timedelta(days=10)  # c5's second order (day 40) is in the future
    got = bench.segment_ordinals(tiny, now)
    past = tiny.with_interactions(tiny.interactions.filter(pl.col("ts") <= now))
    assert got.equals(bench.segment_ordinals(past, now))
    table = segments(past, now=now).join(got, on="customer_id")
    for row in table.iter_rows(named=True):
        assert row["c_value_segment"] == bench.VALUE_ORDER[row["value_segment"]]
        assert row["c_lifecycle"] == bench.STAGE_ORDER[row["lifecycle"]]
    assert set(got["customer_id"]) == {"c1", "c2", "c3", "c4", "c5", "c6"}


def test_segment_hybrid_adds_two_columns_and_changes_nothing_else(bench: Any, synthetic_bundle_dir: Path) -> None:
    h = Bundle.load(synthetic_bundle_dir).hybrid
    seg = pl.DataFrame({"customer_id": h.history.customers.ids[:30].tolist()}, schema={"customer_id": pl.String})
    seg = seg.with_columns(pl.lit(2.0, pl.Float32).alias("c_value_segment"), pl.lit(3.0, pl.Float32).alias("c_lifecycle"))
    with_seg = bench.SegmentHybrid(h.generators, h.stats, h.history, customer_segments=seg, candidates=h.candidates,
                                   new_candidates=h.new_candidates)
    assert with_seg.features == [*h.features, "c_value_segment", "c_lifecycle"]
    customers = [str(c) for c in h.history.customers.ids[20:40]]  # ten with segments, ten without
    for new_only in (False, True):
        base = h.candidate_frame(customers, h.as_of, new_only=new_only)
        got = with_seg.candidate_frame(customers, h.as_of, new_only=new_only)
        assert got.drop("c_value_segment", "c_lifecycle").equals(base)
        known = got["customer_id"].is_in(seg["customer_id"].implode())
        assert got.filter(known)["c_lifecycle"].eq(3.0).all()
        assert got.filter(~known)["c_lifecycle"].is_null().all()

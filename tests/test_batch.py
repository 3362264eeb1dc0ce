"""Batch lists: any batch size gives the same file, memory is one batch, and a killed run writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from recsys.batch import OUTPUT_COLUMNS, recommend_batches, write_recommendations
from recsys.bundle import Bundle


@pytest.fixture(scope="module")
def bundle(synthetic_bundle_dir: Path) -> Bundle:
    return Bundle.load(synthetic_bundle_dir)


def test_batch_size_does_not_change_the_lists(bundle: Bundle, tmp_path: Path) -> None:
    ids = bundle.hybrid.history.customers.ids[:230].tolist() + ["NEVER-SEEN"]
    a = write_recommendations(recommend_batches(bundle.hybrid, ids, 12, batch=1000, progress=False),
                              tmp_path / "a.parquet", customers=len(ids))
    b = write_recommendations(recommend_batches(bundle.hybrid, ids, 12, batch=37, progress=False),
                              tmp_path / "b.parquet", customers=len(ids))
    fa, fb = pl.read_parquet(a.path), pl.read_parquet(b.path)
    assert fa.columns == list(OUTPUT_COLUMNS)
    assert fa.equals(fb) and a.rows == fa.height == 12 * len(ids)
    assert fa["customer_id"].unique(maintain_order=True).to_list() == ids  # input order kept
    # row groups = batches: a reader can stream the file as it was written
    import pyarrow.parquet as pq

    assert pq.ParquetFile(b.path).num_row_groups == -(-len(ids) // 37)


def test_csv_output_has_one_header(bundle: Bundle, tmp_path: Path) -> None:
    ids = bundle.hybrid.history.customers.ids[:50].tolist()
    out = write_recommendations(recommend_batches(bundle.hybrid, ids, 5, batch=20, progress=False),
                                tmp_path / "r.csv", customers=len(ids)).path
    frame = pl.read_csv(out)
    assert frame.height == 250 and frame.columns == list(OUTPUT_COLUMNS)


def test_killed_run_leaves_the_previous_file_and_no_partial_one(bundle: Bundle, tmp_path: Path) -> None:
    out = tmp_path / "picks.parquet"
    out.write_bytes(b"previous run")
    ids = bundle.hybrid.history.customers.ids[:60].tolist()

    def dies_half_way() -> Iterator[pl.DataFrame]:
        batches = recommend_batches(bundle.hybrid, ids, 12, batch=20, progress=False)
        yield next(batches)
        raise KeyboardInterrupt  # the scheduler's kill, as Python sees it

    with pytest.raises(KeyboardInterrupt):
        write_recommendations(dies_half_way(), out, customers=len(ids))
    assert out.read_bytes() == b"previous run"
    assert [p.name for p in tmp_path.iterdir()] == ["picks.parquet"]


def test_no_customers_gives_an_empty_valid_file(bundle: Bundle, tmp_path: Path) -> None:
    out = write_recommendations(recommend_batches(bundle.hybrid, [], 12, progress=False), tmp_path / "e.parquet",
                                customers=0).path
    frame = pl.read_parquet(out)
    assert frame.height == 0 and frame.columns == list(OUTPUT_COLUMNS)


def test_history_append_is_pending_until_compacted_and_reads_agree(bundle: Bundle) -> None:
    """Fold-in appends wait beside the indexed base; every read gives what a full rebuild gives."""
    from datetime import timedelta

    from recsys.history import PurchaseHistory

    h = PurchaseHistory(bundle.hybrid.history.frame)
    known = h.customers.ids[:3].tolist()
    end = h.last_ts + timedelta(days=1)  # type: ignore[operator]
    new = pl.DataFrame({"customer_id": [known[0], known[0], "NEW-CUSTOMER"], "item_id": ["I00001", "I00002", "I00003"],
                        "ts": [end, end, end], "price": [1.0, 2.0, 3.0], "quantity": [1.0, 1.0, 1.0],
                        "order_id": ["o1", "o1", "o2"], "event": ["purchase"] * 3})
    rebuilt = PurchaseHistory(pl.concat([h.frame, new.drop("event")], how="vertical_relaxed"))
    base_rows = h._base.height
    h.append(new)
    assert h._base.height == base_rows and h._delta.height == 3  # nothing re-sorted yet
    assert "NEW-CUSTOMER" in h and len(h) == len(rebuilt) and h.last_ts == end
    for cid in (known[0], known[1], "NEW-CUSTOMER", "NOBODY"):
        assert h.of(cid).equals(rebuilt.of(cid))
    assert h.of_many(known + ["NEW-CUSTOMER"]).equals(rebuilt.of_many(known + ["NEW-CUSTOMER"]))
    assert h.frame.equals(rebuilt.frame) and h._delta.height == 0  # whole-table read merges
    assert h.customers == rebuilt.customers


def test_service_precomputes_the_most_recent_customers_first(synthetic_bundle_dir: Path) -> None:
    """With a cap, the precomputed rankings are those of the most recently active customers."""
    from recsys.online import OnlineRecommender
    from recsys.rules import load_placements

    root = Path(__file__).resolve().parents[1]
    online = OnlineRecommender(Bundle.load(synthetic_bundle_dir), load_placements(root / "configs" / "placements.yaml"),
                               version="crosssell:t")
    assert online.precompute(max_customers=25) == 25
    last = online.hybrid.history.frame.group_by("customer_id").agg(pl.col("ts").max()).sort("ts", descending=True)
    cutoff = last["ts"][24]
    assert all(last.filter(pl.col("customer_id") == c)["ts"][0] >= cutoff for c in online.precomputed)

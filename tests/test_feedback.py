"""Not-interested feedback, library side: the period, a model swapped in later still honours old
dismissals (loaded from the store), erasure forgets them, and the KPI counts."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from recsys.bundle import Bundle
from recsys.feedback import NotInterested, feedback_counts, load_feedback
from recsys.online import Filters, OnlineRecommender
from recsys.rules import load_placements
from recsys.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _dismissals(rows: list[tuple[str, str, str | None, datetime]], source: str | None = None) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                         "event": ["not_interested"] * len(rows), "category": [r[2] for r in rows],
                         "ts": [r[3] for r in rows], "source": [source] * len(rows)},
                        schema={"customer_id": pl.String, "item_id": pl.String, "event": pl.String,
                                "category": pl.String, "ts": pl.Datetime("us"), "source": pl.String})


def test_a_dismissal_holds_for_the_configured_period() -> None:
    t = datetime(2025, 6, 1)
    state = NotInterested(days=10)
    state.fold(_dismissals([("c1", "i1", None, t), ("c1", "", "belts", t), ("c2", "i9", None, t)]))
    assert state.blocked("c1", t + timedelta(days=9)) == (("i1",), ("belts",))
    assert state.blocked("c1", t + timedelta(days=11)) == ((), ())
    assert state.blocked("nobody", t) == ((), ())
    f = state.filters("c1", Filters(exclude_item_ids=("x",)), t)
    assert f.exclude_item_ids == ("x", "i1") and f.exclude_categories == ("belts",)
    state.forget(["c1"])
    assert state.blocked("c1", t) == ((), ())


def test_a_model_swapped_in_later_still_honours_old_dismissals(tmp_path: Path, synthetic_bundle_dir: Path) -> None:
    bundle = Bundle.load(synthetic_bundle_dir)
    online = OnlineRecommender(bundle, load_placements(ROOT / "configs" / "placements.yaml"), version="t")
    cid = bundle.hybrid.history.frame["customer_id"][0]
    shown = online.recommend(cid, placement="for_you", n=12)
    item, category = shown["item_id"][0], shown["category"][1]
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    # dismissed before the model's data ends: older than anything the log replay folds into a new version
    old = online.clock - timedelta(days=20)
    store.add_events(_dismissals([(cid, item, None, old), (cid, "", category, old)], source="widget:for_you"))
    fresh = OnlineRecommender(bundle, load_placements(ROOT / "configs" / "placements.yaml"), version="t2")
    assert load_feedback(fresh, store, days=90) == 2
    for placement in ("for_you", "home", "email"):
        out = fresh.recommend(cid, placement=placement, n=12)
        assert out.height == 12 and item not in set(out["item_id"]) and category not in set(out["category"])
    assert load_feedback(OnlineRecommender(bundle, {}, version="t3"), store, days=10) == 0  # expired
    fresh.forget([cid])
    assert fresh.not_interested.blocked(cid, fresh.clock) == ((), ())
    counts = feedback_counts(store)
    assert counts.row(0, named=True) == {"source": "widget:for_you", "events": 2, "customers": 1, "items": 1,
                                         "categories": 1}
    store.close()

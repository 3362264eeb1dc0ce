"""The per-request path (``rank_one``: dictionaries and arrays) equals the batch path (polars joins).

The ranker was trained on batch features, so the per-request features must be the same numbers, not
approximately similar ones: every column is compared, then the final order and explanations.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys.bundle import Bundle
from recsys.ranking._features import to_matrix
from recsys.ranking._single import single_candidates, single_features

COLS = ["item_id", "score", "reason_type", "source_item_id", "source_ts"]


@pytest.fixture(scope="module")
def hybrid(synthetic_bundle_dir: Path):  # type: ignore[no-untyped-def]
    return Bundle.load(synthetic_bundle_dir).hybrid


def _sample(hybrid, k: int = 40) -> list[str]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    return [str(c) for c in rng.choice(hybrid.history.customers.ids, size=k, replace=False)]


@pytest.mark.parametrize("days_later", [0, 45])
def test_every_feature_matches_the_batch_path(hybrid, days_later: int) -> None:  # type: ignore[no-untyped-def]
    now = hybrid.reference_time + timedelta(days=days_later)
    for c in _sample(hybrid):
        batch = hybrid.candidate_frame([c], now)
        cand = single_candidates(hybrid, c)
        assert sorted(cand.items) == sorted(batch["item_id"].to_list()), c
        pos = {i: j for j, i in enumerate(cand.items)}
        X = single_features(cand, hybrid.history.of(c), hybrid.item_lookup, now)
        X = X[[pos[i] for i in batch["item_id"].to_list()]]
        ref = to_matrix(batch, hybrid.features)
        same = np.isclose(ref, X, rtol=1e-6, atol=0, equal_nan=True)
        bad = [hybrid.features[j] for j in np.flatnonzero(~same.all(axis=0))]
        assert not bad, f"customer {c}: features differ: {bad}"


@pytest.mark.parametrize("new_only", [False, True])
def test_rank_one_equals_rank(hybrid, new_only: bool) -> None:  # type: ignore[no-untyped-def]
    now = hybrid.reference_time
    for c in _sample(hybrid):
        one = hybrid.rank_one(c, now, new_only=new_only)
        batch = hybrid.rank([c], now, new_only=new_only).select(COLS)
        assert one.select(COLS).equals(batch), c
        assert one["customer_id"].unique().to_list() == [c]


def test_history_cut_at_now_and_unknown_customer(hybrid) -> None:  # type: ignore[no-untyped-def]
    """Purchases at or after ``now`` do not count; an unknown customer gets the generators that serve
    everyone (trending, popular), never an error."""
    c = _sample(hybrid, 1)[0]
    first = hybrid.history.of(c)["ts"].min()
    early = hybrid.rank_one(c, first)
    assert early.select(COLS).equals(hybrid.rank([c], first).select(COLS))
    cold = hybrid.rank_one("never-seen-customer", hybrid.reference_time)
    assert cold.height > 0
    assert set(cold["reason_type"]) <= {"trending_in_category", "popular", "similar_customers"}
    assert cold.select(COLS).equals(hybrid.rank(["never-seen-customer"], hybrid.reference_time).select(COLS))


def test_deeper_cross_sell_pool_used_by_both_paths(hybrid) -> None:  # type: ignore[no-untyped-def]
    """``new_candidates`` (the cross-sell pool) applies to the batch and the per-request path alike."""
    now = hybrid.reference_time
    c = _sample(hybrid, 1)[0]
    shallow = hybrid.rank([c], now, new_only=True).height
    saved = hybrid.new_candidates
    try:
        hybrid.new_candidates = {k: 3 * v for k, v in saved.items()}
        deep = hybrid.rank([c], now, new_only=True)
        assert deep.height > shallow
        assert hybrid.rank_one(c, now, new_only=True).select(COLS).equals(deep.select(COLS))
    finally:
        hybrid.new_candidates = saved


@pytest.mark.parametrize("name", ["buy_again", "copurchase", "category_complements"])
def test_explain_arrays_equal_the_sources_frame(hybrid, name: str) -> None:  # type: ignore[no-untyped-def]
    """The per-request arrays and ``recommend_with_sources`` are one computation in two shapes."""
    gen = hybrid.generators[name]
    customers = _sample(hybrid, 12)
    frame = gen.recommend_with_sources(customers, 20, on_unknown="empty")
    e = gen.explain_arrays(customers, 20, on_unknown="empty")
    ts_col = "source_ts" if "source_ts" in frame.columns else "last_bought_ts"
    assert [customers[r] for r in e.row] == frame["customer_id"].to_list()
    assert e.rank.tolist() == frame["rank"].to_list()
    assert e.item_id.tolist() == frame["item_id"].to_list()
    np.testing.assert_array_equal(e.score, frame["score"].to_numpy())
    src = frame["source_item_id"] if "source_item_id" in frame.columns else frame["item_id"]
    assert e.source_item_id.tolist() == src.to_list()
    assert e.source_us.tolist() == frame[ts_col].cast(pl.Int64).to_list()


def test_rank_one_equals_rank_without_a_trained_ranker(hybrid) -> None:  # type: ignore[no-untyped-def]
    """The untrained blend (reciprocal-rank fusion) is the same function on both paths."""
    saved = hybrid.ranker
    try:
        hybrid.ranker = None
        for c in _sample(hybrid, 10):
            one = hybrid.rank_one(c, hybrid.reference_time)
            assert one.select(COLS).equals(hybrid.rank([c], hybrid.reference_time).select(COLS)), c
    finally:
        hybrid.ranker = saved

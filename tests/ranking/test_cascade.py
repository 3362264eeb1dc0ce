"""Cascade scoring: the first trees for every candidate, the rest for each customer's best.

Finished candidates carry the whole ensemble's score, cut-off ones follow them, a customer's result
does not depend on the batch it is scored in (batch == per-request path), and the setting travels
with the bundle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys.bundle import Bundle
from recsys.ranking._cascade import PRUNED_OFFSET, Cascade
from recsys.ranking._features import to_matrix

COLS = ["item_id", "score", "reason_type", "source_item_id", "source_ts"]


@pytest.fixture(scope="module")
def bundle(synthetic_bundle_dir: Path) -> Bundle:
    return Bundle.load(synthetic_bundle_dir)


def _customers(bundle: Bundle, k: int = 30) -> list[str]:
    rng = np.random.default_rng(11)
    return [str(c) for c in rng.choice(bundle.hybrid.history.customers.ids, size=k, replace=False)]


def test_the_two_halves_add_up_to_the_whole_score_for_every_walker(bundle: Bundle) -> None:
    h = bundle.hybrid
    X = to_matrix(h.candidate_frame(_customers(bundle, 10), h.as_of), h.features)
    r = h.ranker
    assert r is not None and r.n_trees > 4
    t = r.n_trees // 3
    whole = r.predict(X)
    np.testing.assert_allclose(r.predict(X, trees=(0, t)) + r.predict(X, trees=(t, r.n_trees)), whole, rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_allclose(r.predict_numpy(X, trees=(0, t)) + r.predict_numpy(X, trees=(t, r.n_trees)), whole,
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(r.predict(X, trees=(t, t)), np.zeros(len(X)))


def test_keeping_every_candidate_changes_no_order(bundle: Bundle) -> None:
    h, now = bundle.hybrid, bundle.hybrid.as_of
    ids = _customers(bundle)
    exact = h.rank(ids, now)
    try:
        h.cascade = Cascade(trees=5, keep=10_000)
        cascaded = h.rank(ids, now)
    finally:
        h.cascade = None
    assert cascaded.select("customer_id", "item_id").equals(exact.select("customer_id", "item_id"))
    np.testing.assert_allclose(cascaded["score"].to_numpy(), exact["score"].to_numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("new_only", [False, True])
def test_cut_candidates_follow_and_a_customer_does_not_depend_on_the_batch(bundle: Bundle, new_only: bool) -> None:
    h, now = bundle.hybrid, bundle.hybrid.as_of
    ids = _customers(bundle)
    exact = h.rank(ids, now, new_only=new_only).select("customer_id", "item_id", pl.col("score").alias("exact"))
    try:
        h.cascade = Cascade(trees=5, keep=8)
        cascaded = h.rank(ids, now, new_only=new_only)
        for c in ids[:12]:
            one = h.rank_one(c, now, new_only=new_only)
            alone = h.rank([c], now, new_only=new_only).select(COLS)
            assert one.select(COLS).equals(alone), c
            assert cascaded.filter(pl.col("customer_id") == c).select(COLS).equals(alone), c
    finally:
        h.cascade = None
    both = cascaded.join(exact, on=["customer_id", "item_id"], maintain_order="left")
    assert both.height == cascaded.height
    finished = both.filter(pl.col("score") > -PRUNED_OFFSET / 2)
    assert finished.group_by("customer_id").len()["len"].max() == 8
    np.testing.assert_allclose(finished["score"].to_numpy(), finished["exact"].to_numpy(), rtol=1e-5, atol=1e-5)
    # within each customer every finished candidate precedes every cut-off one
    first_cut = both.with_row_index("pos").group_by("customer_id").agg(
        pl.col("pos").filter(pl.col("score") <= -PRUNED_OFFSET / 2).min().alias("cut"),
        pl.col("pos").filter(pl.col("score") > -PRUNED_OFFSET / 2).max().alias("done"),
    ).drop_nulls()
    assert (first_cut["done"] < first_cut["cut"]).all()


def test_the_setting_travels_with_the_bundle(bundle: Bundle, tmp_path: Path) -> None:
    bundle.hybrid.cascade = Cascade(trees=20, keep=40)
    try:
        bundle.save(tmp_path / "b")
    finally:
        bundle.hybrid.cascade = None
    assert Bundle.load(tmp_path / "b").hybrid.cascade == Cascade(trees=20, keep=40)

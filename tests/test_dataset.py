"""``recsys.dataset``: the one "purchases only" rule every model, the history and the evaluation use."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from recsys.dataset import Dataset, only_purchases, purchases_only


def _frame(events: list[str | None]) -> pl.DataFrame:
    n = len(events)
    return pl.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "item_id": ["i1"] * n,
                         "ts": [datetime(2025, 1, 1 + i) for i in range(n)], "event": events})


def test_purchases_only_drops_other_events_and_nulls_and_copies_nothing_when_all_are_purchases() -> None:
    mixed = _frame(["purchase", None, "click", "purchase"])
    assert purchases_only(mixed)["customer_id"].to_list() == ["c0", "c3"]
    assert not only_purchases(mixed["event"])
    plain = _frame(["purchase", "purchase"])
    assert purchases_only(plain) is plain  # no copy: at H&M size a filter copied ~1.8 GB per fit
    assert purchases_only(plain.drop("event")).height == 2  # no event column: every row is a purchase


def test_dataset_purchases_is_the_interactions_themselves_when_every_row_is_a_purchase() -> None:
    items = pl.DataFrame({"item_id": ["i1"], "category": ["x"], "price": [1.0]})
    only = Dataset(_frame(["purchase", "purchase"]), items)
    assert only.purchases is only.interactions
    mixed = Dataset(_frame(["purchase", "cart", "purchase"]), items)
    assert mixed.purchases["customer_id"].to_list() == ["c0", "c2"]
    assert mixed.with_interactions(_frame(["purchase"])).purchases.height == 1  # checked per dataset

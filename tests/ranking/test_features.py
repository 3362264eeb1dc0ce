"""Item statistics the ranker sees: repeat rate and repurchase interval, checked by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from recsys.dataset import Dataset
from recsys.ranking._features import ItemStats

T0 = datetime(2024, 1, 1)


def _shop() -> Dataset:
    rows = [  # (customer, item, day)
        ("a", "soap", 0), ("a", "soap", 2), ("a", "soap", 6),  # gaps 2 and 4 days: median 3
        ("b", "soap", 1),                                       # bought once
        ("c", "soap", 0), ("c", "soap", 10),                    # one gap of 10 days
        ("a", "towel", 3), ("b", "towel", 4),                   # nobody bought it again
    ]
    interactions = pl.DataFrame(
        {"customer_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
         "ts": [T0 + timedelta(days=r[2]) for r in rows], "event": ["purchase"] * len(rows)}
    )
    items = pl.DataFrame({"item_id": ["soap", "towel", "lamp"], "category": ["bath", "bath", "home"],
                          "price": [2.0, 9.0, 30.0]})
    return Dataset(interactions, items)


def test_repeat_rate_and_interval_are_per_buyer() -> None:
    stats = ItemStats().fit(_shop()).items_.sort("item_id")
    got = {r["item_id"]: r for r in stats.iter_rows(named=True)}
    assert got["soap"]["i_buyers"] == 3
    assert got["soap"]["i_repeat_rate"] == pytest.approx(2 / 3)
    assert got["soap"]["i_interval"] == pytest.approx(6.5)  # median of the buyers' medians 3 and 10
    assert got["towel"]["i_repeat_rate"] == 0.0 and got["towel"]["i_interval"] is None
    assert got["lamp"]["i_repeat_rate"] is None and got["lamp"]["i_buyers"] == 0.0  # never bought

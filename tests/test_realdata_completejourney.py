"""Complete Journey loads through the shipped config with the PROVENANCE numbers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from recsys.data import load_dataset

pytestmark = pytest.mark.realdata


def test_completejourney_matches_provenance(shared_data: Path) -> None:
    ds, report = load_dataset(
        Path(__file__).resolve().parents[1] / "configs" / "datasets" / "completejourney.yaml",
        location=shared_data / "completejourney",
    )
    assert ds.interactions.height == 1_469_307
    assert ds.interactions["customer_id"].n_unique() == 2_469
    assert ds.purchases["order_id"].n_unique() == 155_848
    assert ds.date_range == (datetime(2017, 1, 1, 11, 53, 26), datetime(2018, 1, 1, 4, 1, 20))
    assert ds.items["category"].drop_nulls().n_unique() == 303
    # the two explicit dataset policies are reported, not silent
    text = "\n".join(report.lines())
    assert "8,869 purchases with quantity ≤ 0 counted as quantity 1" in text
    assert "17 items missing from the catalogue" in text

"""Temporal splits: leak-free by construction (hypothesis properties), the boundary rule, clear errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recsys.dataset import Dataset
from recsys.exceptions import ConfigError
from recsys.schema import empty_frame
from recsys.split import Split, rolling_folds, temporal_split

T0 = datetime(2025, 1, 1)
ITEMS = pl.DataFrame({"item_id": [f"i{i}" for i in range(5)]})


def dataset(rows: list[tuple[str, str, float, str]]) -> Dataset:
    """rows: (customer, item, hours after T0, event)."""
    inter = pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "ts": [T0 + timedelta(hours=r[2]) for r in rows],
            "event": [r[3] for r in rows],
        },
        schema={"customer_id": pl.String, "item_id": pl.String, "ts": pl.Datetime("us"), "event": pl.String},
    )
    return Dataset(inter, ITEMS, source="hypothesis")


ROW = st.tuples(
    st.sampled_from(["c1", "c2", "c3", "c4"]),
    st.sampled_from(ITEMS["item_id"].to_list()),
    st.integers(0, 24 * 30),  # whole hours: plenty of exact ties with the cut-off
    st.sampled_from(["purchase", "purchase", "purchase", "view"]),
)
rows_strategy = st.lists(ROW, max_size=40)
dense_rows = st.lists(ROW, min_size=30, max_size=80)  # most fold layouts succeed on these


def _keyed(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.select("customer_id", "item_id", "ts", "event").rows())


def _check_leak_free(data: Dataset, split: Split) -> None:
    train, test = split.train.interactions, split.test.interactions
    val = split.validation.interactions if split.validation is not None else data.interactions.clear()
    # disjoint windows, in time order, covering every row
    train_end = split.validation_cutoff or split.cutoff
    assert train["ts"].max() < train_end  # type: ignore[operator]
    assert test["ts"].min() >= split.cutoff  # type: ignore[operator]
    if split.validation is not None:
        assert split.validation_cutoff is not None and split.validation_cutoff < split.cutoff
        assert val["ts"].min() >= split.validation_cutoff and val["ts"].max() < split.cutoff  # type: ignore[operator]
    if split.test_end is None:
        assert _keyed(pl.concat([train, val, test])) == _keyed(data.interactions)
    else:
        assert test["ts"].max() < split.test_end  # type: ignore[operator]
    assert not set(train.rows()) & set(test.rows()) and not set(val.rows()) & set(test.rows())
    # known customers = exactly the customers with a purchase in train
    bought = set(train.filter(pl.col("event") == "purchase")["customer_id"].to_list())
    assert split.known_customers == bought and split.known_customers <= set(train["customer_id"].to_list())
    # the catalogue travels with every window
    assert split.train.items.equals(data.items) and split.test.items.equals(data.items)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=rows_strategy, cut_hours=st.integers(-5, 24 * 30 + 5), val_hours=st.none() | st.integers(1, 24 * 10)
)
@example(rows=[], cut_hours=10, val_hours=None)
@example(rows=[("c1", "i0", 0, "purchase"), ("c2", "i1", 10, "purchase")], cut_hours=10, val_hours=None)
def test_temporal_split_is_leak_free(rows: list, cut_hours: int, val_hours: int | None) -> None:
    data = dataset(rows)
    cutoff = T0 + timedelta(hours=cut_hours)
    vdays = val_hours / 24 if val_hours is not None else None
    try:
        split = temporal_split(data, cutoff=cutoff, validation_days=vdays)
    except ConfigError as err:
        # an error is only allowed when a window really has no purchases (or there is no data at all)
        p = data.purchases
        train_end = cutoff - timedelta(days=vdays) if vdays is not None else cutoff
        empty = (
            p.height == 0
            or p.filter(pl.col("ts") < train_end).height == 0
            or p.filter(pl.col("ts") >= cutoff).height == 0
            or (
                vdays is not None
                and p.filter((pl.col("ts") >= train_end) & (pl.col("ts") < cutoff)).height == 0
            )
        )
        assert empty, str(err)
        return
    assert split.cutoff == cutoff
    _check_leak_free(data, split)


def test_empty_dataset_is_a_clear_error() -> None:
    empty = Dataset(empty_frame("interactions"), ITEMS, source="nothing")
    with pytest.raises(ConfigError, match="'nothing'.*no interactions"):
        temporal_split(empty, holdout_days=14)
    with pytest.raises(ConfigError, match="no interactions"):
        rolling_folds(empty)


def test_holdout_days_boundary_is_inclusive_on_test_side() -> None:
    data = dataset(
        [("c1", "i0", 0, "purchase"), ("c2", "i1", 24 * 10, "purchase"), ("c3", "i2", 24 * 14, "purchase")]
    )
    split = temporal_split(data, holdout_days=4)  # max ts = day 14, cut-off exactly at day 10
    assert split.cutoff == T0 + timedelta(days=10)
    assert sorted(split.test.interactions["customer_id"].to_list()) == ["c2", "c3"]
    assert split.train.interactions["customer_id"].to_list() == ["c1"]
    assert split.known_customers == frozenset({"c1"}) and split.validation is None


def test_validation_window() -> None:
    data = dataset(
        [("c1", "i0", 0, "purchase"), ("c2", "i1", 24 * 5, "purchase"), ("c3", "i2", 24 * 10, "purchase")]
    )
    split = temporal_split(data, cutoff=date(2025, 1, 8), validation_days=5)  # a date means midnight
    assert split.cutoff == datetime(2025, 1, 8) and split.validation_cutoff == datetime(2025, 1, 3)
    assert split.validation is not None
    assert split.validation.interactions["customer_id"].to_list() == ["c2"]
    assert split.train.interactions["customer_id"].to_list() == ["c1"]
    assert split.test.interactions["customer_id"].to_list() == ["c3"]
    assert "train=1 rows" in repr(split)


def test_errors_name_dates_and_range() -> None:
    data = dataset([("c1", "i0", 0, "purchase"), ("c2", "i1", 24, "purchase")])
    with pytest.raises(ConfigError, match=r"train empty.*2024-12-01.*2025-01-01 00:00:00 to 2025-01-02"):
        temporal_split(data, cutoff=datetime(2024, 12, 1))
    with pytest.raises(ConfigError, match=r"test empty.*2025-02-01"):
        temporal_split(data, cutoff=datetime(2025, 2, 1))
    # views alone do not make a test window
    with_views = dataset([("c1", "i0", 0, "purchase"), ("c2", "i1", 48, "view")])
    with pytest.raises(ConfigError, match="test empty"):
        temporal_split(with_views, holdout_days=1)
    with pytest.raises(ConfigError, match="exactly one"):
        temporal_split(data)
    with pytest.raises(ConfigError, match="exactly one"):
        temporal_split(data, cutoff=T0, holdout_days=3)
    with pytest.raises(ConfigError, match="'holdout_days'.*Got -1"):
        temporal_split(data, holdout_days=-1)
    with pytest.raises(ConfigError, match="naive"):
        temporal_split(data, cutoff=datetime(2025, 1, 2, tzinfo=UTC))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=dense_rows, n_folds=st.integers(1, 4), fold_hours=st.integers(12, 24 * 5))
def test_rolling_folds_tile_the_end_of_the_data(rows: list, n_folds: int, fold_hours: int) -> None:
    data = dataset(rows)
    try:
        folds = rolling_folds(data, n_folds=n_folds, fold_days=fold_hours / 24)
    except ConfigError as err:
        assert "no interactions" in str(err) or "empty" in str(err)
        return
    end = data.interactions["ts"].max()
    step = timedelta(hours=fold_hours)
    assert len(folds) == n_folds
    for i, fold in enumerate(folds):
        assert fold.cutoff == end - (n_folds - i) * step  # type: ignore[operator]
        _check_leak_free(data, fold)
        if i < n_folds - 1:
            assert fold.test_end == folds[i + 1].cutoff  # consecutive, disjoint test windows
    assert folds[-1].test_end is None and folds[-1].test.interactions["ts"].max() == end
    tested = pl.concat([f.test.interactions for f in folds])
    in_span = data.interactions.filter(pl.col("ts") >= folds[0].cutoff)
    assert _keyed(tested) == _keyed(in_span)  # every row of the span tested exactly once


def test_rolling_folds_errors_name_the_fold() -> None:
    data = dataset(
        [("c1", "i0", 0, "purchase"), ("c2", "i1", 24 * 20, "purchase"), ("c3", "i2", 24 * 21, "purchase")]
    )
    with pytest.raises(ConfigError, match=r"fold 1/2 leaves test empty"):
        rolling_folds(data, n_folds=2, fold_days=7)
    with pytest.raises(ConfigError, match="'n_folds'"):
        rolling_folds(data, n_folds=0)
    with pytest.raises(ConfigError, match=r"fold 1/1 leaves validation empty.*2025-01-15"):
        rolling_folds(data, n_folds=1, fold_days=2, validation_days=5)
    more = dataset(
        [
            *[(c, i, h, "purchase") for c, i, h in (("c1", "i0", 0), ("c2", "i1", 480), ("c3", "i2", 504))],
            ("c4", "i3", 24 * 15, "purchase"),
        ]
    )
    (fold,) = rolling_folds(more, n_folds=1, fold_days=2, validation_days=5)
    assert fold.validation is not None and fold.validation.interactions["customer_id"].to_list() == ["c4"]
    assert fold.known_customers == frozenset({"c1"})

"""The persistent store behaves the same on SQLite (default) and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from recsys.store import Store, erasure_hash


def _events() -> pl.DataFrame:
    return pl.DataFrame({
        "customer_id": ["c1", "c1", "c2"], "item_id": ["a", "b", "a"],
        "event": ["purchase", "cart", "purchase"],
        "ts": [datetime(2025, 1, 1), datetime(2025, 1, 2), datetime(2025, 1, 3)],
        "price": [10.0, None, 12.5],
    })


def _exercise(store: Store) -> None:
    assert store.add_events(_events(), source="widget:home", model_version="v1") == 3
    ev = store.events(["c1"])
    assert ev["item_id"].to_list() == ["a", "b"] and ev["source"].to_list() == ["widget:home"] * 2
    assert store.events(since=datetime(2025, 1, 2)).height == 2
    picks = pl.DataFrame({"customer_id": ["c1", "c1", "c2"], "item_id": ["x", "y", "x"], "rank": [1, 2, 1]})
    assert store.log_sends(picks, run_id="r1", campaign="welcome", model_version="v1") == 3
    assert store.log_sends(picks, run_id="r1", campaign="welcome", model_version="v1") == 0  # idempotent
    assert store.sends(customer_ids=["c1"]).height == 2
    store.set_consent({"c1": True, "c2": False})
    store.set_consent({"c2": True})
    assert store.consent() == {"c1": True, "c2": True}
    store.suppress(["c2"], reason="bounced")
    assert store.suppressed() == {"c2"}
    counts = store.erase(["c1", "unknown"])
    assert counts["events"] == 2 and counts["send_log"] == 2 and counts["consent"] == 1
    assert counts["consent_history"] == 1  # the audit trail goes too: erasure wins over audit
    for table in ("events", "send_log", "consent", "consent_history", "suppression"):
        assert store.count(table, "c1") == 0
    assert not any(store.erase(["c1"]).values())  # no-op
    assert store.is_erased(["c1", "c2"]) == [True, False]
    assert erasure_hash("c1") in store.erased_hashes() and "c1" not in str(store.erased_hashes())
    assert store.count("events") == 1


def test_sqlite_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    _exercise(store)
    store.close()
    reopened = Store(f"sqlite:///{tmp_path / 'state.db'}")  # durable across connections
    assert reopened.count("events") == 1 and reopened.is_erased(["c1"]) == [True]


def test_failed_batch_writes_nothing(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    bad = _events().with_columns(pl.Series("ts", [datetime(2025, 1, 1), None, datetime(2025, 1, 1)]))
    with pytest.raises(Exception):  # noqa: B017 - the driver's own integrity error
        store.add_events(bad)
    assert store.count("events") == 0


@pytest.mark.postgres
def test_postgres_store(pg_uri: str) -> None:
    store = Store(pg_uri)
    _exercise(store)
    store.close()


def _log_behaviour(store: Store) -> None:
    """The events table is a log: seq only grows (never reused after an erasure), one batch per call in
    time order, and a reader past its watermark sees exactly the new rows."""
    assert store.last_event_seq() == 0
    store.add_events(_events().reverse(), model_version="v1")  # stored in time order whatever the input order
    log = store.events_after(0)
    assert log["seq"].to_list() == sorted(log["seq"].to_list()) and log["batch"].n_unique() == 1
    assert log["ts"].to_list() == sorted(log["ts"].to_list())
    mark = store.last_event_seq()
    store.erase(["c2"])  # deletes the newest row
    store.add_events(_events().head(1).with_columns(pl.lit("unknown_item").alias("flags")))
    new = store.events_after(mark)
    assert new.height == 1 and new["seq"][0] > mark and new["flags"].to_list() == ["unknown_item"]
    assert store.events_after(0, upto=mark)["seq"].max() <= mark
    assert store.events_after(0, ts_after=datetime(2025, 1, 1))["ts"].min() > datetime(2025, 1, 1)


def test_sqlite_events_are_a_log(tmp_path: Path) -> None:
    _log_behaviour(Store(f"sqlite:///{tmp_path / 'state.db'}"))


@pytest.mark.postgres
def test_postgres_events_are_a_log(pg_uri: str) -> None:
    store = Store(pg_uri)
    _log_behaviour(store)
    store.close()


def test_store_from_before_the_log_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("""CREATE TABLE events (customer_id TEXT NOT NULL, item_id TEXT NOT NULL, event TEXT NOT NULL,
        ts TIMESTAMP NOT NULL, quantity REAL NOT NULL DEFAULT 1, price REAL, order_id TEXT, source TEXT,
        model_version TEXT, received_at TIMESTAMP NOT NULL)""")
    conn.executemany("INSERT INTO events VALUES (?, ?, 'purchase', ?, 1, NULL, NULL, NULL, NULL, ?)",
                     [("c1", "b", "2025-01-03 00:00:00", "2025-01-03 00:00:00"),
                      ("c1", "a", "2025-01-01 00:00:00", "2025-01-03 00:00:00")])
    conn.commit()
    conn.close()
    store = Store(f"sqlite:///{path}")
    log = store.events_after(0)
    assert log["item_id"].to_list() == ["a", "b"] and log["seq"].to_list() == [1, 2]
    store.add_events(_events().head(1))
    assert store.last_event_seq() == 3 and Store(f"sqlite:///{path}").count("events") == 3

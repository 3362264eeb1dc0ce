"""Consent from outside: bad rows reported by place, one transaction, latest ts wins, the audit history,
erased customers skipped; CSV, Parquet and SQL sources; the CLI."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recsys.consent import ConsentImportError, import_consent, parse_granted
from recsys.exceptions import SchemaError
from recsys.store import Store

GOOD = """customer_id,channel,granted,ts,source
c1,email,true,2025-03-01T10:00:00Z,crm
c2,email,no,2025-03-01,crm
c2,sms,yes,2025-03-02T08:00:00+02:00,
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def test_import_stores_latest_per_channel_and_keeps_history(tmp_path: Path, store: Store) -> None:
    report = import_consent(store, _write(tmp_path / "crm.csv", GOOD))
    assert (report.rows, report.written, report.customers, report.granted, report.withdrawn) == (3, 3, 2, 2, 1)
    assert store.consent() == {"c1": True, "c2": False} and store.consent("sms") == {"c2": True}
    state = store.consent_state(["c2"]).filter(pl.col("channel") == "sms").row(0, named=True)
    assert state["ts"] == datetime(2025, 3, 2, 6) and state["source"] == "crm.csv"  # UTC; empty source → file
    # an older export arriving later does not undo a newer record, but is kept for audit
    import_consent(store, _write(tmp_path / "old.csv", "customer_id,channel,granted,ts\nc2,email,yes,2025-01-01\n"))
    assert store.consent()["c2"] is False
    # a newer one wins
    import_consent(store, _write(tmp_path / "new.csv", "customer_id,channel,granted,ts\nc2,email,yes,2025-04-01\n"))
    assert store.consent()["c2"] is True
    history = store.consent_history(["c2"]).filter(pl.col("channel") == "email")
    assert history.select("granted", "ts").rows() == [
        (False, datetime(2025, 3, 1)), (True, datetime(2025, 1, 1)), (True, datetime(2025, 4, 1))]
    assert history["batch"].n_unique() == 3


def test_bad_rows_are_reported_by_file_line_column_and_value(tmp_path: Path, store: Store) -> None:
    bad = _write(tmp_path / "bad.csv", GOOD + ",email,maybe,yesterday,crm\nc3,fax,1,2225-01-01,crm\n")
    with pytest.raises(ConsentImportError) as err:
        import_consent(store, bad)
    found = {(b.where, b.column, b.value) for b in err.value.bad}
    assert found == {("line 5", "customer_id", ""), ("line 5", "granted", "maybe"), ("line 5", "ts", "yesterday"),
                     ("line 6", "channel", "fax"), ("line 6", "ts", "2225-01-01")}
    message = str(err.value)
    assert f"{bad}, line 5, column granted: 'maybe'" in message and "nothing imported" in message
    assert store.count("consent") == 0 and store.count("consent_history") == 0


def test_one_bad_row_at_the_end_leaves_the_store_unchanged(tmp_path: Path, store: Store) -> None:
    import_consent(store, _write(tmp_path / "first.csv", GOOD))
    before = (store.consent_state(), store.consent_history())
    rows = "".join(f"c{i},email,{'true' if i % 2 else 'false'},2025-05-01\n" for i in range(1000))
    big = _write(tmp_path / "big.csv", "customer_id,channel,granted,ts\n" + rows + "c1,email,true,not-a-date\n")
    with pytest.raises(ConsentImportError) as err:
        import_consent(store, big)
    assert [(b.where, b.column) for b in err.value.bad] == [("line 1002", "ts")]
    after = (store.consent_state(), store.consent_history())
    assert all(a.equals(b) for a, b in zip(before, after, strict=True))


def test_a_database_error_mid_batch_rolls_the_whole_batch_back(store: Store) -> None:
    """The store's half of "nothing half-imports": rows that pass validation but fail in the database
    (here a null time, which only a caller skipping validation can send) leave nothing behind."""
    records = pl.DataFrame({"customer_id": ["a", "b", "c"], "channel": ["email"] * 3, "granted": [True] * 3,
                            "ts": [datetime(2025, 1, 1), datetime(2025, 1, 2), None]})
    with pytest.raises(Exception):  # noqa: B017 - the driver's own integrity error
        store.record_consent(records)
    assert store.count("consent") == 0 and store.count("consent_history") == 0


def test_missing_column_names_the_file_and_column(tmp_path: Path, store: Store) -> None:
    with pytest.raises(SchemaError, match=r"nocol\.csv: missing column\(s\) granted"):
        import_consent(store, _write(tmp_path / "nocol.csv", "customer_id,channel,ts\nc1,email,2025-01-01\n"))


def test_parquet_and_sql_sources(tmp_path: Path, store: Store) -> None:
    frame = pl.DataFrame({"customer_id": ["p1", "p2"], "channel": ["email", "push"], "granted": [True, False],
                          "ts": [datetime(2025, 1, 1), datetime(2025, 1, 2)], "source": ["crm", "crm"]})
    frame.write_parquet(tmp_path / "c.parquet")
    assert import_consent(store, tmp_path / "c.parquet").written == 2
    bad = frame.with_columns(pl.Series("channel", ["email", "pigeon"]))
    bad.write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ConsentImportError, match=r"bad\.parquet, row 2, column channel: 'pigeon'"):
        import_consent(store, tmp_path / "bad.parquet")
    db = tmp_path / "crm.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE optins (customer_id TEXT, channel TEXT, granted INTEGER, ts TEXT, source TEXT)")
    conn.executemany("INSERT INTO optins VALUES (?, ?, ?, ?, ?)",
                     [("s1", "email", 1, "2025-02-01 09:00:00", "crm"), ("p1", "email", 0, "2025-02-01", None)])
    conn.commit()
    conn.close()
    report = import_consent(store, f"sqlite:///{db}", table="optins")
    assert report.written == 2 and report.origin.endswith("#optins")
    assert store.consent() == {"p1": False, "s1": True}
    assert store.consent_state(["p1"]).filter(pl.col("channel") == "email")["source"][0] == report.origin


def test_erased_customers_are_skipped_not_stored(tmp_path: Path, store: Store) -> None:
    store.erase(["c1"])
    report = import_consent(store, _write(tmp_path / "crm.csv", GOOD))
    assert report.skipped_erased == 1 and report.written == 2 and "c1" not in store.consent()
    assert store.count("consent_history", "c1") == 0


@pytest.mark.parametrize(("raw", "want"), [("TRUE", True), ("1", True), ("opt_out", False), ("N", False),
                                           (True, True), (0, False), ("perhaps", None), ("", None)])
def test_granted_spellings(raw: object, want: bool | None) -> None:
    assert parse_granted(raw) is want


def test_cli_import_and_show(tmp_path: Path) -> None:
    from pipelines.cli import app

    uri = f"sqlite:///{tmp_path / 'state.db'}"
    runner = CliRunner()
    ok = runner.invoke(app, ["consent", "import", str(_write(tmp_path / "crm.csv", GOOD)), "--store", uri])
    assert ok.exit_code == 0, ok.output
    assert "imported 3 consent records" in ok.output and "2 customers" in ok.output
    bad = runner.invoke(app, ["consent", "import", str(_write(tmp_path / "bad.csv", GOOD + "c9,email,x,2025-01-01\n")),
                              "--store", uri])
    assert bad.exit_code != 0 and "bad.csv, line 5, column granted: 'x'" in bad.output
    shown = runner.invoke(app, ["consent", "show", "c2", "--store", uri])
    assert shown.exit_code == 0 and "sms    granted" in shown.output and "history:" in shown.output

"""The data layer's promises: every bad-input case fails with its own message naming source, column,
first row and count; lenient mode drops and reports; sources agree."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from recsys.data import DatasetConfig, load_dataset, load_dataset_config
from recsys.exceptions import ConfigError, SchemaError

ITEMS = "item_id,category,price\nA,trousers,50\nB,belts,20\nC,shoes,80\n"
GOOD = (
    "customer_id,item_id,ts,quantity,order_id\n"
    "c1,A,2025-01-01 10:00:00,1,o1\n"
    "c1,B,2025-01-20 10:00:00,2,o2\n"
    "c2,C,2025-02-01,1,o3\n"
)


def _config(folder: Path, **interactions: object) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {
            "name": "t",
            "source": {"kind": "files", "path": str(folder)},
            "interactions": {"file": "interactions.csv", **interactions},
            "items": {"file": "items.csv"},
            "customers": None,
        }
    )


def _write(folder: Path, interactions: str, items: str = ITEMS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text(interactions)
    (folder / "items.csv").write_text(items)
    return folder


def test_good_input_loads_canonical(tmp_path: Path) -> None:
    ds, report = load_dataset(_config(_write(tmp_path, GOOD)))
    assert report.ok
    assert ds.interactions.schema["ts"] == pl.Datetime("us")
    assert ds.interactions.schema["quantity"] == pl.Float32
    assert ds.interactions["event"].to_list() == ["purchase"] * 3
    assert ds.interactions["quantity"].to_list() == [1.0, 2.0, 1.0]
    assert ds.items["in_stock"].to_list() == [True, True, True]


@pytest.mark.parametrize(
    ("interactions", "items", "expected"),
    [
        pytest.param(
            GOOD.replace("customer_id,", "cust,"), ITEMS,
            r"interactions.csv: missing required column 'customer_id' \(interactions.customer_id\)",
            id="missing-column",
        ),
        pytest.param(
            GOOD.replace("2025-02-01", "2025-02-31"), ITEMS,
            r"interactions.csv: column 'ts': 1 row with an unparseable date; first at line 4 \(value '2025-02-31'\)",
            id="bad-date",
        ),
        pytest.param(
            GOOD.replace("10:00:00,2,o2", "10:00:00,-2,o2").replace("2025-02-01,1,", "2025-02-01,0,"), ITEMS,
            r"interactions.csv: column 'quantity': 2 rows with a purchase of zero or negative quantity; "
            r"first at line 3 \(value '-2.0'\)",
            id="nonpositive-quantity",
        ),
        pytest.param(
            GOOD.replace("10:00:00,1,o1", "10:00:00,lots,o1"), ITEMS,
            r"column 'quantity': 1 row with a value that is not a number; first at line 2 \(value 'lots'\)",
            id="not-a-number",
        ),
        pytest.param(
            GOOD, ITEMS + "B,bags,10\n",
            r"items.csv: column 'item_id': 1 row with a duplicate item id; first at line 5 \(value 'B'\)",
            id="duplicate-item",
        ),
        pytest.param(
            GOOD + "c3,ZZ,2025-03-01,1,o4\n", ITEMS,
            r"interactions.csv: column 'item_id': 1 rows refer to an item not in the catalogue .*first at row 4 "
            r"\(value 'ZZ'\)",
            id="unknown-item",
        ),
        pytest.param(
            "customer_id,item_id,ts\n", ITEMS, r"interactions.csv: interactions input is empty", id="empty",
        ),
        pytest.param(
            GOOD.replace("c2,C", ",C"), ITEMS,
            r"column 'customer_id': 1 row with no value; first at line 4", id="missing-id",
        ),
    ],
)
def test_bad_input_names_source_column_row(tmp_path: Path, interactions: str, items: str, expected: str) -> None:
    with pytest.raises(SchemaError, match=expected):
        load_dataset(_config(_write(tmp_path, interactions, items)))


def test_unknown_event_type(tmp_path: Path) -> None:
    text = "customer_id,item_id,ts,event\nc1,A,2025-01-01,purchase\nc1,B,2025-01-02,wishlist\n"
    with pytest.raises(SchemaError, match=r"column 'event': 1 row with an unknown event type .*line 3"):
        load_dataset(_config(_write(tmp_path, text)))


def test_lenient_drops_and_reports(tmp_path: Path) -> None:
    bad = GOOD + "c3,A,not-a-date,1,o5\nc3,A,2025-03-01,-1,o6\nc3,ZZ,2025-03-02,1,o7\n"
    ds, report = load_dataset(_config(_write(tmp_path, bad)), lenient=True)
    assert ds.interactions.height == 3
    assert report.dropped["interactions"] == 3
    text = "\n".join(report.lines())
    assert "unparseable date" in text and "zero or negative quantity" in text and "not in the catalogue" in text


def test_policies_are_explicit(tmp_path: Path) -> None:
    text = GOOD.replace("2025-02-01,1,", "2025-02-01,0,") + "c3,ZZ,2025-03-02,1,o7\n"
    folder = _write(tmp_path, text)
    ds, report = load_dataset(_config(folder, nonpositive_quantity="one", unknown_items="placeholder"))
    assert ds.interactions.height == 4
    assert "ZZ" in ds.items["item_id"].to_list()
    assert ds.items.filter(pl.col("item_id") == "ZZ")["category"].to_list() == [None]
    assert any("counted as quantity 1" in line for line in report.lines())


def test_price_is_line_total(tmp_path: Path) -> None:
    text = "customer_id,item_id,ts,quantity,sales\nc1,A,2025-01-01,4,10.0\n"
    ds, _ = load_dataset(_config(_write(tmp_path, text), columns={"price": "sales"}, price_is_line_total=True))
    assert ds.interactions["price"].to_list() == [2.5]


def test_column_mapping_missing_source_column(tmp_path: Path) -> None:
    cfg = _config(_write(tmp_path, GOOD), columns={"customer_id": "household_id"})
    with pytest.raises(SchemaError, match=r"missing column 'household_id' \(mapped to interactions.customer_id\)"):
        load_dataset(cfg)


def test_gzip_and_parquet_sources_agree(tmp_path: Path) -> None:
    plain, _ = load_dataset(_config(_write(tmp_path / "a", GOOD)))
    gz = tmp_path / "b"
    _write(gz, GOOD)
    (gz / "interactions.csv.gz").write_bytes(gzip.compress(GOOD.encode()))
    cfg = _config(gz).model_copy(update={"interactions": _config(gz).interactions.model_copy(
        update={"file": "interactions.csv.gz"})})
    zipped, _ = load_dataset(cfg)
    assert plain.interactions.equals(zipped.interactions)
    pq = tmp_path / "c"
    pq.mkdir()
    plain.interactions.write_parquet(pq / "interactions.parquet")
    plain.items.write_parquet(pq / "items.parquet")
    cfg_pq = DatasetConfig.model_validate({
        "name": "t", "source": {"kind": "files", "path": str(pq)},
        "interactions": {"file": "interactions.parquet"}, "items": {"file": "items.parquet"}, "customers": None,
    })
    from_parquet, _ = load_dataset(cfg_pq)
    assert plain.interactions.equals(from_parquet.interactions)
    assert plain.items.equals(from_parquet.items)


def test_sqlite_source_matches_files(tmp_path: Path) -> None:
    files, _ = load_dataset(_config(_write(tmp_path / "f", GOOD)))
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("create table interactions(customer_id text, item_id text, ts text, quantity real, order_id text)")
        con.executemany("insert into interactions values (?,?,?,?,?)",
                        [tuple(line.split(",")) for line in GOOD.strip().splitlines()[1:]])
        con.execute("create table items(item_id text, category text, price real)")
        con.executemany("insert into items values (?,?,?)",
                        [tuple(line.split(",")) for line in ITEMS.strip().splitlines()[1:]])
    cfg = DatasetConfig.model_validate({
        "name": "t", "source": {"kind": "sql", "uri": f"sqlite:///{db}"},
        "interactions": {"table": "interactions"}, "items": {"table": "items"}, "customers": None,
    })
    from_sql, _ = load_dataset(cfg)
    assert files.interactions.equals(from_sql.interactions)
    assert files.items.equals(from_sql.items)
    assert files.fingerprint()["sha256"] == from_sql.fingerprint()["sha256"]


def test_config_typo_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsource: {kind: files, path: /tmp}\ninteractons: {file: a.csv}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid dataset config:\n  interactons: Extra inputs"):
        load_dataset_config(path)


def test_missing_folder_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data folder not found"):
        load_dataset(_config(tmp_path / "nope"))


@pytest.mark.postgres
def test_postgres_source_matches_files(tmp_path: Path, pg_uri: str) -> None:
    import psycopg

    files, _ = load_dataset(_config(_write(tmp_path / "f", GOOD)))
    with psycopg.connect(pg_uri, autocommit=True) as con:
        con.execute("create table interactions(customer_id text, item_id text, ts timestamp, quantity real,"
                    " order_id text)")
        with con.cursor() as cur:
            cur.executemany("insert into interactions values (%s,%s,%s,%s,%s)",
                            [tuple(line.split(",")) for line in GOOD.strip().splitlines()[1:]])
            con.execute("create table items(item_id text, category text, price double precision)")
            cur.executemany("insert into items values (%s,%s,%s)",
                            [tuple(line.split(",")) for line in ITEMS.strip().splitlines()[1:]])
    cfg = DatasetConfig.model_validate({
        "name": "t", "source": {"kind": "sql", "uri": pg_uri},
        "interactions": {"table": "interactions"}, "items": {"table": "items"}, "customers": None,
    })
    from_pg, _ = load_dataset(cfg)
    assert files.interactions.equals(from_pg.interactions)
    assert files.items.equals(from_pg.items)
    assert "postgresql://postgres@" in from_pg.source

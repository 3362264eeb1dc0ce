"""``Store``: the state that must outlive a model — events, campaign send log, consent, erasures.

Why a real database: the service receives events from many processes, campaign runs must be idempotent
and auditable, and an erasure must be durable.  SQLite (a file) is the embedded default; PostgreSQL is
used when the URI says so.  Plain DB-API with one small dialect shim (placeholders, upserts) keeps the
dependency surface to the stdlib ``sqlite3`` and ``psycopg``.

Privacy: erasures are recorded as a SHA-256 of the customer id under a fixed prefix, never the id itself, so
the record proves an erasure happened and lets training exclude the customer without keeping their id.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from recsys.exceptions import ConfigError

__all__ = ["Store", "erasure_hash"]

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS events (
        customer_id TEXT NOT NULL, item_id TEXT NOT NULL, event TEXT NOT NULL, ts TIMESTAMP NOT NULL,
        quantity REAL NOT NULL DEFAULT 1, price REAL, order_id TEXT, source TEXT, model_version TEXT,
        received_at TIMESTAMP NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS events_customer ON events (customer_id)",
    """CREATE TABLE IF NOT EXISTS send_log (
        run_id TEXT NOT NULL, campaign TEXT NOT NULL, customer_id TEXT NOT NULL, item_id TEXT NOT NULL,
        rank INTEGER NOT NULL, control BOOLEAN NOT NULL, model_version TEXT, sent_at TIMESTAMP NOT NULL,
        PRIMARY KEY (run_id, customer_id, item_id))""",
    "CREATE INDEX IF NOT EXISTS send_log_customer ON send_log (customer_id, sent_at)",
    """CREATE TABLE IF NOT EXISTS consent (
        customer_id TEXT PRIMARY KEY, email_consent BOOLEAN NOT NULL, updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS suppression (
        customer_id TEXT PRIMARY KEY, reason TEXT, added_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS erasures (id_hash TEXT PRIMARY KEY, erased_at TIMESTAMP NOT NULL)""",
]

EVENT_COLUMNS = ("customer_id", "item_id", "event", "ts", "quantity", "price", "order_id", "source",
                 "model_version", "received_at")


def erasure_hash(customer_id: str) -> str:
    return hashlib.sha256(f"crosssell-erasure:{customer_id}".encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Store:
    """One database holding events, send log, consent, suppression and erasures.

    Parameters
    ----------
    uri
        ``sqlite:///path/to/file.db`` (created if missing) or ``postgresql://user@host:port/db``.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._lock = threading.Lock()
        if uri.startswith("sqlite:///"):
            self.kind = "sqlite"
            path = uri[len("sqlite:///"):]
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._conn: Any = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                              detect_types=sqlite3.PARSE_DECLTYPES)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
        elif uri.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgres"
            self._conn = psycopg.connect(uri, autocommit=True)
        else:
            raise ConfigError(f"unsupported store URI {uri!r}: use sqlite:///PATH or postgresql://…")
        with self._tx() as cur:
            for stmt in _SCHEMA:
                cur.execute(stmt)

    # ------------------------------------------------------------- plumbing
    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgres" else sql

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction: all statements inside commit together or not at all."""
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN")
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute(self._sql(sql), tuple(params))
                return list(cur.fetchall())
            finally:
                cur.close()

    def close(self) -> None:
        self._conn.close()

    # --------------------------------------------------------------- events
    def add_events(self, events: pl.DataFrame, *, source: str | None = None, model_version: str | None = None) -> int:
        """Append events (canonical interaction columns); returns rows written."""
        if events.height == 0:
            return 0
        now = _now()
        rows = [
            (r["customer_id"], r["item_id"], r.get("event") or "purchase", r["ts"], float(r.get("quantity") or 1.0),
             r.get("price"), r.get("order_id"), r.get("source") or source, model_version, now)
            for r in events.iter_rows(named=True)
        ]
        sql = self._sql(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * 10)})")
        with self._tx() as cur:
            cur.executemany(sql, rows)
        return len(rows)

    def events(self, customer_ids: Iterable[str] | None = None, *, since: datetime | None = None) -> pl.DataFrame:
        """Stored events as canonical interactions (+ source, model_version), oldest first."""
        where, params = [], []
        if customer_ids is not None:
            ids = list(customer_ids)
            if not ids:
                return self._events_frame([])
            where.append(f"customer_id IN ({', '.join('?' * len(ids))})")
            params += ids
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._events_frame(self._query(sql + " ORDER BY ts", params))

    @staticmethod
    def _events_frame(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
        schema = {"customer_id": pl.String, "item_id": pl.String, "event": pl.String, "ts": pl.Datetime("us"),
                  "quantity": pl.Float32, "price": pl.Float64, "order_id": pl.String, "source": pl.String,
                  "model_version": pl.String, "received_at": pl.Datetime("us")}
        return pl.DataFrame(rows, schema=schema, orient="row")

    # ------------------------------------------------------------- send log
    def log_sends(self, picks: pl.DataFrame, *, run_id: str, campaign: str, model_version: str | None) -> int:
        """Record exported picks; idempotent per (run_id, customer, item) — a re-run does not double-log."""
        if picks.height == 0:
            return 0
        now: datetime | str = _now()
        if self.kind == "sqlite":  # the text sqlite3's default adapter would write for every row, made once
            now = now.isoformat(" ")  # type: ignore[union-attr]
        control = pl.col("control").cast(pl.Boolean) if "control" in picks.columns else pl.lit(False)
        # (in primary-key order: SQLite's B-tree inserts ~15 % faster than in arrival order)
        cols = picks.select("customer_id", "item_id", pl.col("rank").cast(pl.Int64), control.alias("control")) \
            .sort("customer_id", "item_id")
        rows = [(run_id, campaign, c, i, r, k, model_version, now) for c, i, r, k in cols.iter_rows()]
        conflict = "ON CONFLICT (run_id, customer_id, item_id) DO NOTHING"
        sql = self._sql("INSERT INTO send_log (run_id, campaign, customer_id, item_id, rank, control, model_version,"
                        f" sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) {conflict}")
        before = self.count("send_log")
        with self._tx() as cur:
            cur.executemany(sql, rows)
        return self.count("send_log") - before

    def sends(self, *, since: datetime | None = None, customer_ids: Iterable[str] | None = None) -> pl.DataFrame:
        where, params = [], []
        if since is not None:
            where.append("sent_at >= ?")
            params.append(since)
        if customer_ids is not None:
            ids = list(customer_ids)
            if not ids:
                ids = [""]
            where.append(f"customer_id IN ({', '.join('?' * len(ids))})")
            params += ids
        sql = "SELECT run_id, campaign, customer_id, item_id, rank, control, model_version, sent_at FROM send_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        schema = {"run_id": pl.String, "campaign": pl.String, "customer_id": pl.String, "item_id": pl.String,
                  "rank": pl.Int32, "control": pl.Boolean, "model_version": pl.String, "sent_at": pl.Datetime("us")}
        return pl.DataFrame(self._query(sql, params), schema=schema, orient="row")

    # ---------------------------------------------------- consent/suppression
    def set_consent(self, consents: dict[str, bool]) -> None:
        now = _now()
        sql = self._sql("INSERT INTO consent (customer_id, email_consent, updated_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (customer_id) DO UPDATE SET email_consent = excluded.email_consent, "
                        "updated_at = excluded.updated_at")
        with self._tx() as cur:
            cur.executemany(sql, [(c, bool(v), now) for c, v in consents.items()])

    def consent(self) -> dict[str, bool]:
        return {c: bool(v) for c, v in self._query("SELECT customer_id, email_consent FROM consent")}

    def suppress(self, customer_ids: Iterable[str], reason: str = "") -> None:
        now = _now()
        sql = self._sql("INSERT INTO suppression (customer_id, reason, added_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (customer_id) DO NOTHING")
        with self._tx() as cur:
            cur.executemany(sql, [(c, reason, now) for c in customer_ids])

    def suppressed(self) -> set[str]:
        return {r[0] for r in self._query("SELECT customer_id FROM suppression")}

    # --------------------------------------------------------------- erasure
    def erase(self, customer_ids: Iterable[str]) -> dict[str, int]:
        """Delete every row of these customers and record the erasure (hash + time); idempotent."""
        ids = list(dict.fromkeys(customer_ids))
        counts = {"events": 0, "send_log": 0, "consent": 0, "suppression": 0}
        if not ids:
            return counts
        now = _now()
        marks = ", ".join("?" * len(ids))
        with self._tx() as cur:
            for table in counts:
                cur.execute(self._sql(f"DELETE FROM {table} WHERE customer_id IN ({marks})"), ids)
                counts[table] = max(cur.rowcount, 0)
            cur.executemany(self._sql("INSERT INTO erasures (id_hash, erased_at) VALUES (?, ?) "
                                      "ON CONFLICT (id_hash) DO NOTHING"), [(erasure_hash(c), now) for c in ids])
        return counts

    def erased_hashes(self) -> set[str]:
        return {r[0] for r in self._query("SELECT id_hash FROM erasures")}

    def is_erased(self, customer_ids: Iterable[str]) -> list[bool]:
        hashes = self.erased_hashes()
        return [erasure_hash(c) in hashes for c in customer_ids]

    def count(self, table: str, customer_id: str | None = None) -> int:
        if table not in ("events", "send_log", "consent", "suppression", "erasures"):
            raise ValueError(f"unknown table {table!r}")
        if customer_id is None:
            return int(self._query(f"SELECT COUNT(*) FROM {table}")[0][0])
        return int(self._query(f"SELECT COUNT(*) FROM {table} WHERE customer_id = ?", [customer_id])[0][0])

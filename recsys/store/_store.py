"""``Store``: the state that must outlive a model — events, campaign send log, consent, erasures.

Why a real database: the service receives events from many processes, campaign runs must be idempotent
and auditable, and an erasure must be durable.  SQLite (a file) is the embedded default; PostgreSQL is
used when the URI says so.  Reads and writes are plain DB-API with one small dialect shim (placeholders,
upserts): the event log is on the service's request path, and the stdlib ``sqlite3`` / ``psycopg`` cost
least there.  The tables are SQLAlchemy Core metadata with Alembic migrations (``recsys.store._migrate``):
opening a store upgrades it.

Privacy: erasures are recorded as a SHA-256 of the customer id under a fixed prefix, never the id itself, so
the record proves an erasure happened and lets training exclude the customer without keeping their id.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from recsys.exceptions import ConfigError
from recsys.store._migrate import upgrade

__all__ = ["Store", "erasure_hash"]

#: The events table is a log: ``seq`` orders it — every serving worker folds events in by ``seq``, batch
#: by batch (``batch``: one ``add_events`` call), so every worker, and a restart replaying the table,
#: reaches the same state.  Never reused (SQLite AUTOINCREMENT; PostgreSQL identity), so a reader's
#: watermark survives deletions.  ``flags``: e.g. ``unknown_item`` for an event stored but never folded
#: in.  The tables themselves are made and changed by the migrations (``recsys.store._migrate``).
EVENT_COLUMNS = ("customer_id", "item_id", "event", "ts", "quantity", "price", "order_id", "source",
                 "model_version", "received_at")
LOG_COLUMNS = ("seq", *EVENT_COLUMNS, "batch", "flags", "category")
_CONSENT_SCHEMA: dict[str, Any] = {
    "customer_id": pl.String, "channel": pl.String, "granted": pl.Boolean, "ts": pl.Datetime("us"),
    "source": pl.String, "updated_at": pl.Datetime("us")}
#: Serialises event inserts on PostgreSQL, so ``seq`` order is commit order and no reader skips a row.
_PG_EVENTS_LOCK = 0x63726F73  # "cros"


def erasure_hash(customer_id: str) -> str:
    """SHA-256 of the id under a fixed prefix: what an erasure record keeps instead of the id."""
    return hashlib.sha256(f"crosssell-erasure:{customer_id}".encode()).hexdigest()


def _write_ahead_log(conn: sqlite3.Connection, deadline_s: float = 30.0) -> None:
    """Switch a SQLite file to WAL (readers never wait for the writer).  Why the retry: the switch takes an
    exclusive lock, and SQLite answers "database is locked" at once — without its busy handler — while
    another connection is switching the same new file; workers opening one new database together race
    there (seen in CI).  The mode is persistent, so only the first open of a file really switches."""
    stop = time.monotonic() + deadline_s
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > stop:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


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
            self._conn.execute("PRAGMA busy_timeout=5000")
            _write_ahead_log(self._conn)
        elif uri.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgres"
            self._conn = psycopg.connect(uri, autocommit=True)
        else:
            raise ConfigError(f"unsupported store URI {uri!r}: use sqlite:///PATH or postgresql://…")
        memory = self.kind == "sqlite" and uri == "sqlite:///:memory:"
        #: ``(revision before, revision after)`` of the upgrade this open ran (``(HEAD, HEAD)``: none needed).
        self.migrated = upgrade(uri, self.kind, shared=self._conn if memory else None, conn=self._conn)

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
        """Close the database connection."""
        self._conn.close()

    # --------------------------------------------------------------- events
    def add_events(self, events: pl.DataFrame, *, source: str | None = None, model_version: str | None = None,
                   received_at: datetime | None = None) -> int:
        """Append events (canonical interaction columns, optional ``flags``) as one batch of the log, in
        time order; returns rows written."""
        if events.height == 0:
            return 0
        now = received_at or _now()
        batch = uuid.uuid4().hex
        ordered = events.with_row_index("_row").sort(["ts", "_row"], nulls_last=True)
        rows = [
            (r["customer_id"], r["item_id"], r.get("event") or "purchase", r["ts"], float(r.get("quantity") or 1.0),
             r.get("price"), r.get("order_id"), r.get("source") or source, model_version, now, batch, r.get("flags"),
             r.get("category"))
            for r in ordered.iter_rows(named=True)
        ]
        cols = (*EVENT_COLUMNS, "batch", "flags", "category")
        sql = self._sql(f"INSERT INTO events ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})")
        with self._tx() as cur:
            if self.kind == "postgres":
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_EVENTS_LOCK,))
            cur.executemany(sql, rows)
        return len(rows)

    def last_event_seq(self) -> int:
        """The newest ``seq`` of the events log (0 when empty)."""
        return int(self._query("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])

    def events_after(self, seq: int, *, upto: int | None = None, ts_after: datetime | None = None) -> pl.DataFrame:
        """Log rows with ``seq > seq`` (and ``<= upto``, ``ts > ts_after``), in log order, with ``seq``,
        ``batch`` and ``flags``: what a serving worker has not folded in yet."""
        where, params = ["seq > ?"], list[Any]([seq])
        if upto is not None:
            where.append("seq <= ?")
            params.append(upto)
        if ts_after is not None:
            where.append("ts > ?")
            params.append(ts_after)
        rows = self._query(f"SELECT {', '.join(LOG_COLUMNS)} FROM events WHERE {' AND '.join(where)} ORDER BY seq",
                           params)
        schema: dict[str, Any] = {"seq": pl.Int64, **self._events_frame([]).schema, "batch": pl.String,
                                  "flags": pl.String, "category": pl.String}
        return pl.DataFrame(rows, schema=schema, orient="row")

    def events(self, customer_ids: Iterable[str] | None = None, *, since: datetime | None = None) -> pl.DataFrame:
        """Stored events as canonical interactions (+ source, model_version), oldest first."""
        where: list[str] = []
        params: list[Any] = []
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

    def events_of(self, kinds: Iterable[str], *, since: datetime | None = None,
                  customer_ids: Iterable[str] | None = None) -> pl.DataFrame:
        """Stored events of these kinds (e.g. ``cart``, ``purchase``, ``not_interested``) with their
        ``category`` column, oldest first (log order within a time)."""
        kinds = list(kinds)
        where, params = [f"event IN ({', '.join('?' * len(kinds))})"], list[Any](kinds)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if customer_ids is not None:
            ids = list(customer_ids) or [""]
            where.append(f"customer_id IN ({', '.join('?' * len(ids))})")
            params += ids
        rows = self._query(f"SELECT {', '.join(EVENT_COLUMNS)}, category FROM events WHERE {' AND '.join(where)} "
                           "ORDER BY ts, seq", params)
        return pl.DataFrame(rows, schema={**self._events_frame([]).schema, "category": pl.String}, orient="row")

    @staticmethod
    def _events_frame(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
        schema: dict[str, pl.DataType | type[pl.DataType]] = {
                  "customer_id": pl.String, "item_id": pl.String, "event": pl.String, "ts": pl.Datetime("us"),
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
        """The send log, optionally since a time and for some customers (an empty list matches none); feeds
        frequency caps, the re-send window and KPIs."""
        where: list[str] = []
        params: list[Any] = []
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
        schema: dict[str, pl.DataType | type[pl.DataType]] = {
                  "run_id": pl.String, "campaign": pl.String, "customer_id": pl.String, "item_id": pl.String,
                  "rank": pl.Int32, "control": pl.Boolean, "model_version": pl.String, "sent_at": pl.Datetime("us")}
        return pl.DataFrame(self._query(sql, params), schema=schema, orient="row")

    # ---------------------------------------------------- consent/suppression
    def record_consent(self, records: pl.DataFrame, *, batch: str | None = None,
                       recorded_at: datetime | None = None) -> int:
        """Store consent records — ``customer_id, channel, granted, ts`` (+ ``source``) — in one
        transaction: every record is appended to ``consent_history`` (the audit trail), and the current
        state per (customer, channel) takes the record with the latest ``ts`` (a tie: the later
        arrival), whatever order records arrive in.  Returns the records written.  Validation is the
        caller's (``recsys.consent``): a database error rolls the whole batch back."""
        if records.height == 0:
            return 0
        now = recorded_at or _now()
        batch = batch or uuid.uuid4().hex
        source = records["source"] if "source" in records.columns else pl.Series([None] * records.height)
        rows = [(c, ch, bool(g), ts, src) for c, ch, g, ts, src in zip(
            records["customer_id"], records["channel"], records["granted"], records["ts"], source, strict=True)]
        history = self._sql("INSERT INTO consent_history (customer_id, channel, granted, ts, source, batch, "
                            "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        latest = self._sql(
            "INSERT INTO consent (customer_id, channel, granted, ts, source, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (customer_id, channel) DO UPDATE SET granted = excluded.granted, ts = excluded.ts, "
            "source = excluded.source, updated_at = excluded.updated_at WHERE excluded.ts >= consent.ts")
        with self._tx() as cur:
            cur.executemany(history, [(*r, batch, now) for r in rows])
            cur.executemany(latest, [(*r, now) for r in rows])
        return len(rows)

    def set_consent(self, consents: dict[str, bool], *, channel: str = "email", source: str = "api",
                    ts: datetime | None = None) -> None:
        """Record consent now (``ts``: default the wall clock) for several customers on one channel."""
        now = ts or _now()
        self.record_consent(pl.DataFrame(
            {"customer_id": list(consents), "channel": [channel] * len(consents),
             "granted": [bool(v) for v in consents.values()], "ts": [now] * len(consents),
             "source": [source] * len(consents)},
            schema={"customer_id": pl.String, "channel": pl.String, "granted": pl.Boolean,
                    "ts": pl.Datetime("us"), "source": pl.String}))

    def consent(self, channel: str = "email") -> dict[str, bool]:
        """The current consent per customer on ``channel`` (customers without a record: absent)."""
        return {c: bool(v) for c, v in self._query("SELECT customer_id, granted FROM consent WHERE channel = ?",
                                                   [channel])}

    def consent_state(self, customer_ids: Iterable[str] | None = None) -> pl.DataFrame:
        """The current records: ``customer_id, channel, granted, ts, source, updated_at``."""
        where, params = self._ids_where(customer_ids)
        rows = self._query("SELECT customer_id, channel, granted, ts, source, updated_at FROM consent"
                           f"{where} ORDER BY customer_id, channel", params)
        return pl.DataFrame([(*r[:2], bool(r[2]), *r[3:]) for r in rows], schema=_CONSENT_SCHEMA, orient="row")

    def consent_history(self, customer_ids: Iterable[str] | None = None) -> pl.DataFrame:
        """Every record received (the audit trail), in arrival order: ``customer_id, channel, granted, ts,
        source, batch, recorded_at``."""
        where, params = self._ids_where(customer_ids)
        rows = self._query("SELECT customer_id, channel, granted, ts, source, batch, recorded_at FROM "
                           f"consent_history{where} ORDER BY id", params)
        schema = {**{k: v for k, v in _CONSENT_SCHEMA.items() if k != "updated_at"}, "batch": pl.String,
                  "recorded_at": pl.Datetime("us")}
        return pl.DataFrame([(*r[:2], bool(r[2]), *r[3:]) for r in rows], schema=schema, orient="row")

    @staticmethod
    def _ids_where(customer_ids: Iterable[str] | None) -> tuple[str, list[Any]]:
        if customer_ids is None:
            return "", []
        ids = list(customer_ids) or [""]
        return f" WHERE customer_id IN ({', '.join('?' * len(ids))})", ids

    def suppress(self, customer_ids: Iterable[str], reason: str = "") -> None:
        """Put customers on the suppression list (campaigns exclude them); an existing entry is kept as is."""
        now = _now()
        sql = self._sql("INSERT INTO suppression (customer_id, reason, added_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (customer_id) DO NOTHING")
        with self._tx() as cur:
            cur.executemany(sql, [(c, reason, now) for c in customer_ids])

    def suppressed(self) -> set[str]:
        """Every suppressed customer id."""
        return {r[0] for r in self._query("SELECT customer_id FROM suppression")}

    # --------------------------------------------------------------- erasure
    def erase(self, customer_ids: Iterable[str]) -> dict[str, int]:
        """Delete every row of these customers and record the erasure (hash + time); idempotent."""
        ids = list(dict.fromkeys(customer_ids))
        counts = {"events": 0, "send_log": 0, "consent": 0, "consent_history": 0, "suppression": 0}
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
        """The erasure hashes recorded so far (``erasure_hash`` of each erased id)."""
        return {r[0] for r in self._query("SELECT id_hash FROM erasures")}

    def is_erased(self, customer_ids: Iterable[str]) -> list[bool]:
        """Per id, whether its erasure is recorded (reads the hashes once for the whole list)."""
        hashes = self.erased_hashes()
        return [erasure_hash(c) in hashes for c in customer_ids]

    def count(self, table: str, customer_id: str | None = None) -> int:
        """Rows in a table, optionally of one customer; the name is checked against the known tables because
        it is spliced into the SQL."""
        if table not in ("events", "send_log", "consent", "consent_history", "suppression", "erasures"):
            raise ValueError(f"unknown table {table!r}")
        if customer_id is None:
            return int(self._query(f"SELECT COUNT(*) FROM {table}")[0][0])
        return int(self._query(f"SELECT COUNT(*) FROM {table} WHERE customer_id = ?", [customer_id])[0][0])

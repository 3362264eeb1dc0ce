"""``ExperimentLog``: what each arm showed, what customers did about it, and who was in which arm.

Why its own tables beside the store's (and not columns on ``events`` / ``send_log``): the store's schema
is the service's log and changes through its own migrations; experiments add three append-only tables
that nothing else reads, created here with ``CREATE TABLE IF NOT EXISTS`` on the store's connection (so
SQLite and PostgreSQL both work, in the same transactions as the store's).

* ``exp_experiments`` — name, kind (``service`` | ``campaign``), config JSON: what the read-out needs.
* ``exp_exposures`` — one row per item shown: the response's ``recommendation_id``, arm, model version,
  customer or session, item, position, placement, wall-clock time shown.
* ``exp_outcomes`` — an impression, click or purchase posted to ``/events`` that matched an exposure:
  the same item shown to the same customer (or session) within the attribution window before the event
  was received — or named by its ``recommendation_id``.  The arm is the arm *that showed the item*.
* ``exp_assignments`` — a campaign run's arm per eligible customer (the send log's arm record; emailed
  or not), so the read-out is intention-to-treat: customers a strategy found no picks for still count.

Time: exposures and outcomes use the service's wall clock (shown / received), not the event's ``ts``
(a client clock, or the model's data clock when omitted).  Campaign outcomes follow ``campaign_kpis``:
purchases whose ``ts`` falls within ``window_days`` after the send.

Erasure: ``erase`` deletes a customer's rows from all three tables (``recsys.privacy.erase_everywhere``
calls it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import polars as pl

from recsys.experiments._assign import SESSION_PREFIX
from recsys.experiments._readout import UNIT_SCHEMA, empty_units
from recsys.store import Store

__all__ = ["ExperimentLog", "ATTRIBUTED_EVENTS"]

ATTRIBUTED_EVENTS = ("impression", "click", "purchase")

_TABLES = [
    """CREATE TABLE IF NOT EXISTS exp_experiments (
        name TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL, started_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS exp_exposures (
        rec_id TEXT NOT NULL, item_id TEXT NOT NULL, experiment TEXT NOT NULL, arm TEXT NOT NULL,
        model_version TEXT, customer_id TEXT, session_id TEXT, subject TEXT NOT NULL, placement TEXT,
        position INTEGER NOT NULL, shown_at TIMESTAMP NOT NULL, PRIMARY KEY (rec_id, item_id))""",
    "CREATE INDEX IF NOT EXISTS exp_exposures_subject ON exp_exposures (subject, item_id, shown_at)",
    "CREATE INDEX IF NOT EXISTS exp_exposures_experiment ON exp_exposures (experiment)",
    """CREATE TABLE IF NOT EXISTS exp_outcomes (
        experiment TEXT NOT NULL, arm TEXT NOT NULL, model_version TEXT, rec_id TEXT NOT NULL,
        customer_id TEXT, session_id TEXT, subject TEXT NOT NULL, item_id TEXT NOT NULL, event TEXT NOT NULL,
        quantity REAL NOT NULL, price REAL, order_id TEXT, ts TIMESTAMP, received_at TIMESTAMP NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS exp_outcomes_experiment ON exp_outcomes (experiment)",
    """CREATE TABLE IF NOT EXISTS exp_assignments (
        experiment TEXT NOT NULL, run_id TEXT NOT NULL, campaign TEXT NOT NULL, customer_id TEXT NOT NULL,
        arm TEXT NOT NULL, strategy TEXT, model_version TEXT, emailed BOOLEAN NOT NULL,
        assigned_at TIMESTAMP NOT NULL, PRIMARY KEY (experiment, run_id, customer_id))""",
    "CREATE INDEX IF NOT EXISTS exp_assignments_experiment ON exp_assignments (experiment)",
]
_ERASE_TABLES = ("exp_exposures", "exp_outcomes", "exp_assignments")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _subjects(event: dict[str, Any]) -> list[str]:
    """The units an event may belong to: its customer, and its session (as ``session:<id>``)."""
    out = [event["customer_id"]] if event.get("customer_id") else []
    if event.get("session_id"):
        out.append(f"{SESSION_PREFIX}{event['session_id']}")
    return out


class ExperimentLog:
    """The experiment tables of one ``Store`` (created on first use).

    Uses the store's connection and transaction helper (``Store._tx``/``_query``/``_sql``): one
    database, one lock, and the same dialect shim for SQLite and PostgreSQL.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        with store._tx() as cur:  # noqa: SLF001 - the store's own transaction helper, on purpose
            for stmt in _TABLES:
                cur.execute(stmt)

    def _write(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self.store._tx() as cur:  # noqa: SLF001
            cur.executemany(self.store._sql(sql), rows)  # noqa: SLF001

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.store._query(sql, params)  # noqa: SLF001

    # ------------------------------------------------------------ registry
    def register(self, name: str, *, kind: str, config: dict[str, Any]) -> None:
        """Record (or update) an experiment's kind and config; ``started_at`` stays the first time."""
        now = _now()
        self._write("INSERT INTO exp_experiments (name, kind, config, started_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, config = excluded.config, "
                    "updated_at = excluded.updated_at", [(name, kind, json.dumps(config, sort_keys=True), now, now)])

    def experiment(self, name: str) -> dict[str, Any] | None:
        """The registered experiment (name, kind, config, started_at), or ``None`` if unknown."""
        rows = self._query("SELECT name, kind, config, started_at FROM exp_experiments WHERE name = ?", [name])
        if not rows:
            return None
        n, kind, config, started = rows[0]
        return {"name": n, "kind": kind, "config": json.loads(config), "started_at": started}

    def names(self) -> list[str]:
        """Names of every registered experiment, sorted."""
        return [r[0] for r in self._query("SELECT name FROM exp_experiments ORDER BY name")]

    # ------------------------------------------------------------ exposures
    def log_exposure(self, *, experiment: str, rec_id: str, arm: str, model_version: str | None,
                     customer_id: str | None, session_id: str | None, subject: str, placement: str | None,
                     item_ids: Sequence[str], shown_at: datetime | None = None) -> int:
        """Record one served list (one row per item, in order); returns rows written."""
        at = shown_at or _now()
        rows = [(rec_id, item, experiment, arm, model_version, customer_id, session_id, subject, placement, pos, at)
                for pos, item in enumerate(dict.fromkeys(item_ids), start=1)]
        self._write("INSERT INTO exp_exposures (rec_id, item_id, experiment, arm, model_version, customer_id, "
                    "session_id, subject, placement, position, shown_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (rec_id, item_id) DO NOTHING", rows)
        return len(rows)

    def exposures(self, experiment: str) -> pl.DataFrame:
        """Every served list item logged for the experiment, one row per (rec_id, item)."""
        rows = self._query("SELECT rec_id, item_id, arm, model_version, customer_id, session_id, subject, placement, "
                           "position, shown_at FROM exp_exposures WHERE experiment = ?", [experiment])
        return pl.DataFrame(rows, orient="row", schema={
            "rec_id": pl.String, "item_id": pl.String, "arm": pl.String, "model_version": pl.String,
            "customer_id": pl.String, "session_id": pl.String, "subject": pl.String, "placement": pl.String,
            "position": pl.Int64, "shown_at": pl.Datetime("us")})

    # ------------------------------------------------------------- outcomes
    def attribute(self, events: pl.DataFrame, *, window: timedelta, received_at: datetime | None = None) -> int:
        """Attribute impressions, clicks and purchases to the exposure that showed their item.

        ``events``: ``customer_id, item_id, event, quantity, price, order_id, ts`` and optionally
        ``session_id`` and ``recommendation_id``.  An event matches the newest exposure of its item to its
        customer (or its session) shown at most ``window`` before ``received_at``; an event carrying a
        ``recommendation_id`` matches that response's exposure of the item only (within the window too):
        an id that names no exposure of the item is a click on something else, not on the newest list.
        Events of no experiment are ignored.  Returns outcomes written.
        """
        at = received_at or _now()
        ev = [e for e in events.iter_rows(named=True) if e.get("event") in ATTRIBUTED_EVENTS]
        if not ev:
            return 0
        subjects = {s for e in ev for s in _subjects(e)}
        recs = {e["recommendation_id"] for e in ev if e.get("recommendation_id")}
        where = [f"subject IN ({', '.join('?' * len(subjects))})"] if subjects else []
        if recs:
            where.append(f"rec_id IN ({', '.join('?' * len(recs))})")
        if not where:
            return 0
        # (subject and rec_id are indexed: one /events call reads its customers' recent exposures, never the table)
        rows = self._query(
            "SELECT rec_id, item_id, experiment, arm, model_version, subject, shown_at FROM exp_exposures "
            f"WHERE ({' OR '.join(where)}) AND shown_at >= ? AND shown_at <= ? ORDER BY shown_at",
            [*subjects, *recs, at - window, at])
        if not rows:
            return 0
        by_rec: dict[tuple[str, str], tuple[Any, ...]] = {}
        by_subject: dict[tuple[str, str, str], tuple[Any, ...]] = {}  # newest wins: rows come oldest first
        experiments: set[str] = set()
        for row in rows:
            rec_id, item, experiment, *_ = row
            by_rec[(rec_id, item)] = row
            by_subject[(experiment, row[5], item)] = row
            experiments.add(experiment)
        written = []
        for e in ev:
            item, rec = e["item_id"], e.get("recommendation_id")
            for experiment in sorted(experiments):
                hit = by_rec.get((rec, item)) if rec else None
                if hit is None or hit[2] != experiment:
                    found = [by_subject[k] for k in ((experiment, s, item) for s in _subjects(e)) if k in by_subject]
                    hit = max(found, key=lambda r: r[6]) if found and not rec else None
                if hit is None:
                    continue
                rec_id, _, _, arm, version, subject, _ = hit
                written.append((experiment, arm, version, rec_id, e.get("customer_id"), e.get("session_id"), subject,
                                item, e["event"], float(e.get("quantity") or 1.0), e.get("price"), e.get("order_id"),
                                e.get("ts"), at))
        self._write("INSERT INTO exp_outcomes (experiment, arm, model_version, rec_id, customer_id, session_id, "
                    "subject, item_id, event, quantity, price, order_id, ts, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", written)
        return len(written)

    def outcomes(self, experiment: str) -> pl.DataFrame:
        """Every event ``attribute`` credited to one of the experiment's exposures, with its arm."""
        rows = self._query("SELECT arm, model_version, rec_id, subject, item_id, event, quantity, price, order_id, "
                           "ts, received_at FROM exp_outcomes WHERE experiment = ?", [experiment])
        return pl.DataFrame(rows, orient="row", schema={
            "arm": pl.String, "model_version": pl.String, "rec_id": pl.String, "subject": pl.String,
            "item_id": pl.String, "event": pl.String, "quantity": pl.Float64, "price": pl.Float64,
            "order_id": pl.String, "ts": pl.Datetime("us"), "received_at": pl.Datetime("us")})

    def units(self, experiment: str) -> tuple[pl.DataFrame, str]:
        """One row per (arm, exposed customer or session) of a service experiment (``UNIT_SCHEMA``), and
        what counts as an impression: ``"impression events"`` when any were attributed, else ``"served
        items"`` (every item of every logged response)."""
        shown = self.exposures(experiment)
        if shown.height == 0:
            return empty_units(), "served items"
        out = self.outcomes(experiment).with_columns(
            (pl.col("price").fill_null(0.0) * pl.col("quantity")).alias("revenue"),
            pl.coalesce(pl.col("order_id"), pl.concat_str([pl.col("subject"), pl.col("received_at").cast(pl.String)],
                                                          separator="@")).alias("order"))
        use_events = bool((out["event"] == "impression").any())
        key = ["arm", "subject"]
        base = shown.group_by(key).agg(pl.col("model_version").drop_nulls().first(),
                                       pl.len().cast(pl.Int64).alias("served"))
        agg = out.group_by(key).agg(
            (pl.col("event") == "impression").sum().cast(pl.Int64).alias("impression_events"),
            (pl.col("event") == "click").sum().cast(pl.Int64).alias("clicks"),
            pl.col("order").filter(pl.col("event") == "purchase").n_unique().cast(pl.Int64).alias("orders"),
            pl.col("revenue").filter(pl.col("event") == "purchase").sum().alias("revenue"),
        )
        units = base.join(agg, on=key, how="left").with_columns(
            pl.col("impression_events", "clicks", "orders").fill_null(0), pl.col("revenue").fill_null(0.0))
        units = units.with_columns(
            (pl.col("impression_events") if use_events else pl.col("served")).alias("impressions"),
            (pl.col("orders") > 0).alias("converted"))
        return units.select(list(UNIT_SCHEMA)).cast(UNIT_SCHEMA).sort(key), (
            "impression events" if use_events else "served items")

    # ---------------------------------------------------------- campaigns
    def log_assignments(self, rows: pl.DataFrame, *, experiment: str, campaign: str, run_id: str,
                        assigned_at: datetime | None = None) -> int:
        """Record ``customer_id, arm, strategy, model_version, emailed`` of one campaign run (idempotent
        per experiment, run id and customer); returns rows newly written."""
        if rows.height == 0:
            return 0
        at = assigned_at or _now()
        before = self.count("exp_assignments")
        self._write("INSERT INTO exp_assignments (experiment, run_id, campaign, customer_id, arm, strategy, "
                    "model_version, emailed, assigned_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (experiment, run_id, customer_id) DO NOTHING",
                    [(experiment, run_id, campaign, c, a, s, m, bool(e), at) for c, a, s, m, e in
                     rows.select("customer_id", "arm", "strategy", "model_version", "emailed").iter_rows()])
        return self.count("exp_assignments") - before

    def assignments(self, experiment: str) -> pl.DataFrame:
        """Every customer's arm assignment in the experiment's campaign runs."""
        rows = self._query("SELECT run_id, campaign, customer_id, arm, strategy, model_version, emailed, assigned_at "
                           "FROM exp_assignments WHERE experiment = ?", [experiment])
        return pl.DataFrame(rows, orient="row", schema={
            "run_id": pl.String, "campaign": pl.String, "customer_id": pl.String, "arm": pl.String,
            "strategy": pl.String, "model_version": pl.String, "emailed": pl.Boolean,
            "assigned_at": pl.Datetime("us")})

    def campaign_units(self, experiment: str, *, window_days: float) -> pl.DataFrame:
        """One row per (arm, assigned customer) of a campaign experiment (intention to treat).

        Impressions and clicks: events whose ``source`` is the campaign after the customer's first send;
        orders, revenue, conversion: *any* purchase within ``window_days`` after one of the customer's
        sends (the email's effect, as ``campaign_kpis`` measures uplift)."""
        assigned = self.assignments(experiment)
        if assigned.height == 0:
            return empty_units()
        per = assigned.group_by("arm", "customer_id").agg(
            pl.col("model_version").drop_nulls().first(), pl.col("campaign").first(),
            pl.col("assigned_at").min().alias("first"), pl.col("assigned_at").max().alias("last"))
        events = self.store.events(per["customer_id"].unique().to_list()).join(
            per.select("customer_id", "arm", "campaign", "first", "last"), on="customer_id")
        window = timedelta(days=window_days)
        inside = events.filter((pl.col("ts") > pl.col("first")) & (pl.col("ts") <= pl.col("last") + window))
        bought = inside.filter(pl.col("event") == "purchase").with_columns(
            (pl.col("price").fill_null(0.0) * pl.col("quantity").cast(pl.Float64)).alias("revenue"),
            pl.coalesce(pl.col("order_id"), pl.concat_str([pl.col("customer_id"), pl.col("ts").cast(pl.String)],
                                                           separator="@")).alias("order"))
        sales = bought.group_by("arm", "customer_id").agg(pl.col("order").n_unique().cast(pl.Int64).alias("orders"),
                                                           pl.col("revenue").sum())
        own = events.filter((pl.col("source") == pl.col("campaign")) & (pl.col("ts") > pl.col("first")))
        views = own.group_by("arm", "customer_id").agg(
            (pl.col("event") == "impression").sum().cast(pl.Int64).alias("impressions"),
            (pl.col("event") == "click").sum().cast(pl.Int64).alias("clicks"))
        units = (per.join(sales, on=["arm", "customer_id"], how="left").join(views, on=["arm", "customer_id"],
                                                                              how="left")
                 .with_columns(pl.col("orders", "impressions", "clicks").fill_null(0), pl.col("revenue").fill_null(0.0))
                 .with_columns((pl.col("orders") > 0).alias("converted"), pl.col("customer_id").alias("subject")))
        return units.select(list(UNIT_SCHEMA)).cast(UNIT_SCHEMA).sort("arm", "subject")

    # -------------------------------------------------------------- erasure
    def erase(self, customer_ids: Iterable[str]) -> dict[str, int]:
        """Delete these customers' exposures, outcomes and assignments; rows removed per table."""
        ids = list(dict.fromkeys(customer_ids))
        counts = dict.fromkeys(_ERASE_TABLES, 0)
        if not ids:
            return counts
        marks = ", ".join("?" * len(ids))
        with self.store._tx() as cur:  # noqa: SLF001
            for table in _ERASE_TABLES:
                cur.execute(self.store._sql(f"DELETE FROM {table} WHERE customer_id IN ({marks})"), ids)  # noqa: SLF001
                counts[table] = max(cur.rowcount, 0)
        return counts

    def holds(self, customer_ids: Iterable[str]) -> set[str]:
        """Which of these customers have rows here (an erasure report's "known")."""
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return set()
        marks = ", ".join("?" * len(ids))
        return {r[0] for t in _ERASE_TABLES
                for r in self._query(f"SELECT DISTINCT customer_id FROM {t} WHERE customer_id IN ({marks})", ids)}

    def count(self, table: str) -> int:
        """Rows in one of the experiment tables; the name is checked against the known tables because it is
        spliced into the SQL."""
        if table not in ("exp_experiments", *_ERASE_TABLES):
            raise ValueError(f"unknown table {table!r}")
        return int(self._query(f"SELECT COUNT(*) FROM {table}")[0][0])

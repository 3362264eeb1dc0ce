"""Versioned schema migrations of the store (Alembic over SQLAlchemy Core).

Why: shops keep their state database across upgrades — the event log, the send log, consent with
its audit trail, erasures — and the code's idea of the tables changes (consent per channel with
history, feedback on categories, …).  Every change is a numbered Alembic revision in
``recsys/store/migrations/versions``; opening a ``Store`` upgrades its database to the newest one in
place, rows kept.  A database made before migrations existed (no ``alembic_version`` table) is the
baseline revision's input: ``0001`` recognises it and only stamps it.

Safe when several service workers open the same database at once: the whole upgrade runs in one
write transaction — SQLite ``BEGIN IMMEDIATE`` (the file's write lock; others wait, then find nothing
to do), PostgreSQL a transaction-level advisory lock — and commits or rolls back as a whole (DDL is
transactional on both).

Opening a store that is already at ``HEAD`` costs one query on its own connection; SQLAlchemy and
Alembic (≈1.5 s to import) are imported only when there is something to upgrade.

For developers, a new revision: ``alembic -c recsys/store/alembic.ini revision -m "what"`` (then
edit it, and ``recsys/store/_schema.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.config import Config

__all__ = ["HEAD", "MIGRATIONS", "alembic_config", "current_revision", "script_head", "sqlalchemy_url", "upgrade"]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Serialises upgrades on PostgreSQL (same key as the event-log insert lock: an upgrade waits for
#: inserts in flight and holds new ones back until the schema is whole).
PG_LOCK = 0x63726F73  # "cros"


#: The newest revision this code knows (a test holds it equal to the migrations folder's head).
HEAD = "0002"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config over this package's migrations, built in code (no ``alembic.ini`` needed at run
    time); ``url`` is escaped for its ``%`` interpolation."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def script_head() -> str | None:
    """The head revision of the migrations folder (what ``HEAD`` must say)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def sqlalchemy_url(uri: str) -> str:
    """The store URI as SQLAlchemy spells it: ``postgresql://`` → ``postgresql+psycopg://`` (psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg://" + uri[len(prefix):]
    return uri


def _engine(uri: str, kind: str, shared: Any | None) -> sa.Engine:
    """An engine for one upgrade.  SQLite: autocommit driver mode plus our own ``BEGIN IMMEDIATE`` (the
    recipe in SQLAlchemy's SQLite notes: pysqlite's implicit transactions would commit DDL one statement
    at a time); ``shared``: the store's own connection (``:memory:``: a second connection would see
    another database)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool, StaticPool

    url = sqlalchemy_url(uri)
    if kind != "sqlite":
        return sa.create_engine(url, poolclass=NullPool)
    if shared is not None:
        engine = sa.create_engine("sqlite://", creator=lambda: shared, poolclass=StaticPool)
    else:
        engine = sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": 30.0})

    @sa.event.listens_for(engine, "connect")
    def _autocommit(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _write_lock(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade(uri: str, kind: str, *, revision: str = "head", shared: Any | None = None,
            conn: Any | None = None) -> tuple[str | None, str]:
    """Upgrade the database at ``uri`` to ``revision``; returns ``(revision before, revision after)``
    (``None`` before: a database without migration history — new, or made before migrations).

    ``conn``: an open DB-API connection to the same database, asked first (``(HEAD, HEAD)`` without
    importing Alembic when it is already at the head).
    """
    if conn is not None and revision == "head":
        now_at = current_revision(conn, kind)
        if now_at == HEAD:
            return HEAD, HEAD
    quiet = logging.getLogger("alembic")  # its per-step INFO lines: ours below says what happened
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    engine = _engine(uri, kind, shared)
    try:
        with engine.begin() as locked:
            if kind == "postgres":
                locked.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK})")
            before = MigrationContext.configure(locked).get_current_revision()
            if before != HEAD or revision != "head":
                cfg = alembic_config()
                cfg.attributes["connection"] = locked
                command.upgrade(cfg, revision)
            after = MigrationContext.configure(locked).get_current_revision()
    finally:
        if shared is None:
            engine.dispose()
    if before != after:
        log.info("store %s upgraded from %s to %s", "in memory" if shared is not None else "database",
                 before or "before migrations", after)
    return before, after or ""


def current_revision(conn: Any, kind: str) -> str | None:
    """The revision a DB-API connection's database is at (``None``: no migration history)."""
    cur = conn.cursor()
    try:
        if kind == "postgres":
            cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
        else:
            cur.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'")
        if not cur.fetchone()[0]:
            return None
        cur.execute("SELECT version_num FROM alembic_version")
        row = cur.fetchone()
        return row[0] if row else None
    finally:
        cur.close()

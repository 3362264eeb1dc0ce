"""The store's tables at the newest migration, as SQLAlchemy Core metadata.

Why it exists beside the migrations: the migrations (``recsys/store/migrations/versions``) are the
history — how a database of any age reaches today's shape, rows kept — and this is the result, in one
place, for reading and for a drift test (``tests/test_store_migrations.py`` upgrades an empty database
and asks Alembic to compare it with this metadata: no difference allowed).  A new migration changes
both.

Types are spelled the way the store's DB-API code reads them back: ``TIMESTAMP`` (SQLite's driver
turns a column *declared* TIMESTAMP into ``datetime``), ``REAL``, ``BOOLEAN``, ``TEXT``.  The runtime
keeps plain DB-API (``recsys.store._store``): SQLAlchemy is the schema and migration tool here, not a
layer on every insert of the event log.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["metadata", "STORE_TABLES"]

metadata = sa.MetaData()

_seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY AUTOINCREMENT

events = sa.Table(
    "events", metadata,
    sa.Column("seq", _seq, sa.Identity(), primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("ts", sa.TIMESTAMP, nullable=False),
    sa.Column("quantity", sa.REAL, nullable=False, server_default=sa.text("1")),
    sa.Column("price", sa.REAL),
    sa.Column("order_id", sa.Text),
    sa.Column("source", sa.Text),
    sa.Column("model_version", sa.Text),
    sa.Column("received_at", sa.TIMESTAMP, nullable=False),
    sa.Column("batch", sa.Text),
    sa.Column("flags", sa.Text),
    # (0002) a not_interested event about a whole category: item_id is '' and this names the category
    sa.Column("category", sa.Text),
    sa.Index("events_customer", "customer_id"),
    sa.Index("events_kind_ts", "event", "ts"),
    sqlite_autoincrement=True,
)

send_log = sa.Table(
    "send_log", metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("campaign", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("item_id", sa.Text, primary_key=True),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("control", sa.Boolean, nullable=False),
    sa.Column("model_version", sa.Text),
    sa.Column("sent_at", sa.TIMESTAMP, nullable=False),
    sa.Index("send_log_customer", "customer_id", "sent_at"),
)

#: (0002) The current consent per (customer, channel): the record with the latest ``ts`` wins.
consent = sa.Table(
    "consent", metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("ts", sa.TIMESTAMP, nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("updated_at", sa.TIMESTAMP, nullable=False),
)

#: (0002) Every consent record ever received, in arrival order: the audit trail behind ``consent``.
consent_history = sa.Table(
    "consent_history", metadata,
    sa.Column("id", _seq, sa.Identity(), primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("ts", sa.TIMESTAMP, nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("batch", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.TIMESTAMP, nullable=False),
    sa.Index("consent_history_customer", "customer_id", "channel", "ts"),
    sqlite_autoincrement=True,
)

suppression = sa.Table(
    "suppression", metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("reason", sa.Text),
    sa.Column("added_at", sa.TIMESTAMP, nullable=False),
)

erasures = sa.Table(
    "erasures", metadata,
    sa.Column("id_hash", sa.Text, primary_key=True),
    sa.Column("erased_at", sa.TIMESTAMP, nullable=False),
)

#: The tables the migrations own (other modules may add their own beside them, e.g. ``exp_*``).
STORE_TABLES: tuple[str, ...] = tuple(metadata.tables)

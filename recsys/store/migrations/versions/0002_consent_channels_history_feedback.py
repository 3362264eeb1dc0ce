"""Consent per channel with its audit history; events may name a category (not-interested feedback).

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-09

* ``consent`` becomes one row per (customer, channel) — ``granted``, the record's own time ``ts``
  (latest wins), ``source`` — and ``consent_history`` keeps every record received, for audit.  Old
  rows become ``channel = 'email'`` with ``ts = updated_at`` and ``source = 'store'``, and seed the
  history (batch ``migration-0002``).
* ``events.category``: a ``not_interested`` event about a whole category carries it (``item_id`` is
  then ``''``).  ``events_kind_ts`` serves the cart and feedback look-ups (by event kind and time).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Consent per (customer, channel) with its history seeded from the old rows; ``events.category`` and
    the ``events_kind_ts`` index."""
    op.create_table(
        "consent_v2",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("ts", sa.TIMESTAMP, nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("updated_at", sa.TIMESTAMP, nullable=False),
    )
    op.execute("INSERT INTO consent_v2 (customer_id, channel, granted, ts, source, updated_at) "
               "SELECT customer_id, 'email', email_consent, updated_at, 'store', updated_at FROM consent")
    op.create_table(
        "consent_history",
        sa.Column("id", _seq, sa.Identity(), primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("ts", sa.TIMESTAMP, nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("batch", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.TIMESTAMP, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("consent_history_customer", "consent_history", ["customer_id", "channel", "ts"])
    op.execute("INSERT INTO consent_history (customer_id, channel, granted, ts, source, batch, recorded_at) "
               "SELECT customer_id, 'email', email_consent, updated_at, 'store', 'migration-0002', updated_at "
               "FROM consent ORDER BY updated_at, customer_id")
    op.drop_table("consent")
    op.rename_table("consent_v2", "consent")
    if op.get_bind().dialect.name == "postgresql":  # the primary key keeps its creation name otherwise
        op.execute("ALTER TABLE consent RENAME CONSTRAINT consent_v2_pkey TO consent_pkey")
    op.add_column("events", sa.Column("category", sa.Text))
    op.create_index("events_kind_ts", "events", ["event", "ts"])


def downgrade() -> None:
    """Back to one email flag per customer (the latest email record); other channels, the history and
    category feedback are lost."""
    op.drop_index("events_kind_ts", "events")
    op.execute("DELETE FROM events WHERE category IS NOT NULL AND item_id = ''")
    op.execute("ALTER TABLE events DROP COLUMN category")
    op.create_table(
        "consent_v1",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("email_consent", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.TIMESTAMP, nullable=False),
    )
    op.execute("INSERT INTO consent_v1 (customer_id, email_consent, updated_at) "
               "SELECT customer_id, granted, updated_at FROM consent WHERE channel = 'email'")
    op.drop_index("consent_history_customer", "consent_history")
    op.drop_table("consent_history")
    op.drop_table("consent")
    op.rename_table("consent_v1", "consent")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE consent RENAME CONSTRAINT consent_v1_pkey TO consent_pkey")

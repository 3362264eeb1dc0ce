"""Alembic's environment for the store: run the migrations on the connection we are given.

``recsys.store._migrate.upgrade`` passes an open connection (inside its locked transaction) in
``config.attributes["connection"]``.  From the ``alembic`` command line (developers: ``alembic -c
recsys/store/alembic.ini -x uri=sqlite:///data/state.db upgrade head``; ``current``, ``history``,
``downgrade`` work the same way), the database is ``-x uri=…``, else ``$RECSYS_STORE_URI``, else the
default store file, opened with the same engine recipe and lock as the store's own upgrades.
"""

from __future__ import annotations

import os
from typing import Any

from alembic import context

from recsys.store._schema import metadata


def _run(connection: Any) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: the baseline revision inspects the database")
given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:  # the alembic command line
    from recsys.store._migrate import PG_LOCK, _engine

    uri = context.get_x_argument(as_dictionary=True).get("uri") or os.environ.get(
        "RECSYS_STORE_URI", "sqlite:///data/state.db")
    kind = "sqlite" if uri.startswith("sqlite") else "postgres"
    engine = _engine(uri, kind, None)
    try:
        with engine.begin() as conn:
            if kind == "postgres":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK})")
            _run(conn)
    finally:
        engine.dispose()

"""``Store``: the state that must outlive a model — events, campaign send log, consent (with its audit
history), suppression, erasures — in SQLite (a file, the default) or PostgreSQL (by URI).

Why a package: the store is the runtime class (``_store``), the target schema as SQLAlchemy Core
metadata (``_schema``) and its versioned Alembic migrations (``_migrate``, ``migrations/``), which
upgrade a database of any earlier version in place, rows kept, whenever a ``Store`` opens it.
"""

from __future__ import annotations

from recsys.store._migrate import HEAD, current_revision, upgrade
from recsys.store._store import EVENT_COLUMNS, LOG_COLUMNS, Store, erasure_hash

__all__ = ["EVENT_COLUMNS", "HEAD", "LOG_COLUMNS", "Store", "current_revision", "erasure_hash", "upgrade"]

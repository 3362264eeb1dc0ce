"""Service settings, read once from the environment (``recsys serve`` / ``recsys demo`` set them from flags).

Why environment variables: ``bentoml serve`` starts the worker processes itself, so flags cannot reach
them; every worker reads the same variables and so agrees on keys, limits and policies.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Settings", "EVENT_TYPES", "PROJECT_ROOT"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EVENT_TYPES = ("purchase", "cart", "view", "click", "impression", "not_interested")
UnknownItems = Literal["reject", "accept"]


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """What every worker of one service agrees on.

    Keys: the **admin** key (``RECSYS_API_KEY`` or ``RECSYS_ADMIN_KEY``; ``recsys serve --api-key``) may
    call everything, ``/admin/*`` included; the **public** key (``RECSYS_PUBLIC_KEY``) is the one a web
    page may hold: reads and ``POST /events`` of the types in ``public_events``.  Both travel in the
    ``x-api-key`` header.  Reads need no key while ``open_reads`` is on (the default).
    """

    model: str = "promoted"
    store_uri: str = "sqlite:///data/state.db"
    api_key: str | None = None  #: the admin key
    public_key: str | None = None
    public_events: tuple[str, ...] = EVENT_TYPES
    placements: str = str(PROJECT_ROOT / "configs" / "placements.yaml")
    watch_seconds: float = 2.0
    open_reads: bool = True
    #: Customers whose ranking is precomputed at load, the most recently active first (None = all).
    #: Each costs ~25 KB and ~1.5 ms at load; at shop scale (1.4M customers) "all" would be ~35 GB and
    #: half an hour, so the default keeps the 50k likeliest visitors and the rest take the live path.
    precompute_max: int | None = 50_000
    #: Request bodies above this many bytes are refused with 413 before they are read.
    max_body_bytes: int = 1_000_000
    #: How far ahead of the wall clock (or of the model's data clock, whichever is later) an event's
    #: ``ts`` may be: client clocks drift, but a timestamp in the future must not move the service clock.
    clock_skew_seconds: float = 300.0
    #: How far before the first purchase of the model's data an event's ``ts`` may be.
    backfill_days: float = 0.0
    #: Events naming an item the catalogue does not have: refused (422), or stored flagged and never folded in.
    unknown_items: UnknownItems = "reject"
    #: How often each worker reads events/erasures other workers stored (the shared store is the log).
    sync_seconds: float = 0.25
    #: Optional Redis URL: a pub/sub nudge so other workers read new events at once, not at the next poll.
    redis_url: str | None = None
    #: Days a customer's "not interested" (an item or a category) keeps it out of their widgets.
    not_interested_days: float = 90.0

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        unknown = env.get("RECSYS_UNKNOWN_ITEMS", cls.unknown_items).strip().lower()
        if unknown not in ("reject", "accept"):
            raise ValueError(f"RECSYS_UNKNOWN_ITEMS must be 'reject' or 'accept'. Got {unknown!r} instead.")
        public_events = tuple(e.strip() for e in env.get("RECSYS_PUBLIC_EVENTS", ",".join(EVENT_TYPES)).split(",")
                              if e.strip())
        bad = [e for e in public_events if e not in EVENT_TYPES]
        if bad:
            raise ValueError(f"RECSYS_PUBLIC_EVENTS must list event types of {EVENT_TYPES}. Got {bad} instead.")
        return cls(
            model=env.get("RECSYS_MODEL", cls.model),
            store_uri=env.get("RECSYS_STORE_URI", cls.store_uri),
            api_key=env.get("RECSYS_API_KEY") or env.get("RECSYS_ADMIN_KEY") or None,
            public_key=env.get("RECSYS_PUBLIC_KEY") or None,
            public_events=public_events,
            placements=env.get("RECSYS_PLACEMENTS", cls.placements),
            watch_seconds=float(env.get("RECSYS_WATCH_SECONDS", cls.watch_seconds)),
            open_reads=_flag(env.get("RECSYS_OPEN_READS"), True),
            precompute_max=_precompute_max(env.get("RECSYS_PRECOMPUTE_MAX")),
            max_body_bytes=int(env.get("RECSYS_MAX_BODY_BYTES", cls.max_body_bytes)),
            clock_skew_seconds=float(env.get("RECSYS_CLOCK_SKEW_SECONDS", cls.clock_skew_seconds)),
            backfill_days=float(env.get("RECSYS_EVENT_BACKFILL_DAYS", cls.backfill_days)),
            unknown_items=unknown,  # type: ignore[arg-type]
            sync_seconds=float(env.get("RECSYS_SYNC_SECONDS", cls.sync_seconds)),
            redis_url=env.get("RECSYS_REDIS_URL") or None,
            not_interested_days=float(env.get("RECSYS_NOT_INTERESTED_DAYS", cls.not_interested_days)),
        )


def _precompute_max(value: str | None) -> int | None:
    """``RECSYS_PRECOMPUTE_MAX``: unset = the default cap, ``all`` = every known customer, else a count."""
    if not value:
        return Settings.precompute_max
    return None if value.strip().lower() == "all" else int(value)

"""What the service keeps: the current ``OnlineRecommender``, the event store, and a model watcher.

Why a watcher thread instead of a class-scope ``bentoml.models.BentoModel`` reference: promotion is a
runtime decision (``recsys models promote``) and the site must pick the new version up without a
restart.  The watcher polls the registry's promotion file; a new version is loaded *beside* the serving
one, catches up on stored events, and replaces it in one reference assignment, so in-flight requests
finish on the version they started with and no request sees two.  A version that fails to load is
logged and skipped: the old one keeps serving (or the service stays not-ready if there is none).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from recsys.bundle import Bundle
from recsys.exceptions import RecsysError
from recsys.online import OnlineRecommender
from recsys.registry import Registry
from recsys.rules import load_placements
from recsys.store import Store

log = logging.getLogger("crosssell.service")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    """Service settings from the environment (``recsys serve`` sets them from its flags/config)."""

    model: str = "promoted"
    store_uri: str = "sqlite:///data/state.db"
    api_key: str | None = None
    placements: str = str(PROJECT_ROOT / "configs" / "placements.yaml")
    watch_seconds: float = 2.0
    open_reads: bool = True
    #: Customers whose ranking is precomputed at load (None = all known customers).
    precompute_max: int | None = None

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            model=env.get("RECSYS_MODEL", cls.model),
            store_uri=env.get("RECSYS_STORE_URI", cls.store_uri),
            api_key=env.get("RECSYS_API_KEY") or None,
            placements=env.get("RECSYS_PLACEMENTS", cls.placements),
            watch_seconds=float(env.get("RECSYS_WATCH_SECONDS", cls.watch_seconds)),
            open_reads=env.get("RECSYS_OPEN_READS", "true").lower() in ("1", "true", "yes"),
            precompute_max=int(env["RECSYS_PRECOMPUTE_MAX"]) if env.get("RECSYS_PRECOMPUTE_MAX") else None,
        )


class ServingState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry()
        self.store = Store(settings.store_uri)
        self.placements = load_placements(settings.placements)
        self.online: OnlineRecommender | None = None
        self.last_error: str | None = None
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._erasures_seen = -1
        if not settings.api_key:
            log.warning("RECSYS_API_KEY is not set: /events and admin routes will refuse every request")

    @property
    def ready(self) -> bool:
        return self.online is not None

    def _wanted_tag(self) -> str | None:
        try:
            return self.registry.resolve(self.settings.model).tag
        except RecsysError as exc:
            self.last_error = str(exc)
            return None

    def apply_erasures(self) -> int:
        """Forget, in the serving model, every customer whose erasure the store records (any process
        may have recorded it: ``recsys erase``, another worker, the admin endpoint)."""
        count = self.store.count("erasures")
        online = self.online
        if online is None or count == self._erasures_seen:
            return 0
        from recsys.privacy import erased_ids_among

        hashes = self.store.erased_hashes()
        ids = erased_ids_among(list(online.hybrid.history.customers.ids) + list(online.carts), hashes)
        if ids:
            online.forget(ids)
            log.info("forgot %d erased customers in the serving model", len(ids))
        self._erasures_seen = count
        return len(ids)

    def refresh(self) -> bool:
        """Load the wanted version if it is not the serving one; True if a swap happened."""
        tag = self._wanted_tag()
        current = self.online.version if self.online else None
        if tag is None or tag == current:
            return False
        t0 = time.perf_counter()
        try:
            bundle = Bundle.load(self.registry.get(tag).path)
            fresh = OnlineRecommender(bundle, self.placements, version=tag)
            ready = fresh.precompute(max_customers=self.settings.precompute_max)
        except Exception as exc:  # noqa: BLE001 - a bad bundle must never take the service down
            self.last_error = f"cannot load {tag}: {exc}"
            log.error("model %s not loaded, %s: %s", tag, "keeping " + current if current else "not ready", exc)
            return False
        with self._swap_lock:
            events = self.store.events(since=bundle.reference_time)
            if events.height:
                fresh.ingest(events.filter(events["ts"] > bundle.reference_time))
            self.online = fresh  # the swap: one reference assignment
            self._erasures_seen = -1
            self.apply_erasures()
        self.last_error = None
        import gc

        gc.collect()  # the old version's objects go now, in the background thread, not during a request
        gc.freeze()
        log.info("serving %s (loaded and %d customers precomputed in %.2fs, %d stored events replayed)", tag, ready,
                 time.perf_counter() - t0, events.height)
        return True

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.watch_seconds):
            try:
                self.refresh()
                with self._swap_lock:
                    self.apply_erasures()
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("model watcher")

    def stop(self) -> None:
        self._stop.set()

    def ingest(self, events, *, model_version: str | None):  # type: ignore[no-untyped-def]
        """Store events durably first, then fold them into the serving model."""
        with self._swap_lock:
            stored = self.store.add_events(events, model_version=model_version)
            counts = self.online.ingest(events) if self.online else {"purchase": 0, "cart": 0}
        return stored, counts

    def erase(self, customer_ids):  # type: ignore[no-untyped-def]
        """Erase in the store and in every stored model version, and forget in memory at once."""
        from recsys.privacy import erase_everywhere

        with self._swap_lock:
            known_now = {c for c in customer_ids if self.online is not None and self.online.knows_customer(c)}
            report = erase_everywhere(customer_ids, self.store, self.registry)
            if self.online is not None:
                self.online.forget(list(customer_ids))
            report.unknown = [c for c in report.unknown if c not in known_now]
            self._erasures_seen = -1
        return report

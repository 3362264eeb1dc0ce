"""What the service keeps: the current ``OnlineRecommender``, the event store, a model watcher and a
log follower.

Why a watcher thread instead of a class-scope ``bentoml.models.BentoModel`` reference: promotion is a
runtime decision (``recsys models promote``) and the site must pick the new version up without a
restart.  The watcher polls the registry's promotion file; a new version is loaded *beside* the serving
one, replays the stored events, and replaces it in one reference assignment, so in-flight requests
finish on the version they started with and no request sees two.  A version that fails to load is
logged and skipped: the old one keeps serving (or the service stays not-ready if there is none).

Why the store is the log: an event is stored first and then folded in *from the store*, by every
worker, in the store's order (``seq``), batch by batch — the worker that received it as soon as it is
written, the others within ``sync_seconds`` (serving/sync.py).  Every worker, and a restart replaying the
table, therefore reaches the same state.  Which stored events fold into a model is one rule
(``_foldable``): after the model's reference time (older ones are its training data's business), not
beyond the time received plus the clock skew (a timestamp from before this check existed cannot move the
clock), and of an item the model's catalogue has.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import polars as pl

from recsys.bundle import Bundle
from recsys.exceptions import RecsysError
from recsys.feedback import fold_feedback, load_feedback
from recsys.online import OnlineRecommender
from recsys.registry import Registry
from recsys.rules import load_placements
from recsys.store import Store
from serving.errors import detail
from serving.settings import PROJECT_ROOT, Settings
from serving.sync import LogFollower

__all__ = ["ServingState", "Settings", "PROJECT_ROOT"]

log = logging.getLogger("crosssell.service")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


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
        self._watermark = 0  # the newest event seq folded into self.online
        self.follower = LogFollower(self.catch_up, interval=settings.sync_seconds, redis_url=settings.redis_url)
        if not settings.api_key:
            log.warning("no admin key (RECSYS_API_KEY): /admin routes will refuse every request")
        if not settings.public_key and not settings.api_key:
            log.warning("no keys set (RECSYS_PUBLIC_KEY, RECSYS_API_KEY): /events will refuse every request")

    @property
    def ready(self) -> bool:
        return self.online is not None

    @property
    def watermark(self) -> int:
        """The newest event ``seq`` folded into the serving model."""
        return self._watermark

    def _wanted_tag(self) -> str | None:
        try:
            return self.registry.resolve(self.settings.model).tag
        except RecsysError as exc:
            self.last_error = str(exc)
            return None

    # ------------------------------------------------------------- events
    def check_events(self, events: list[Any], online: OnlineRecommender) -> list[dict[str, Any]]:
        """What the schema cannot say about a batch of events: each ``ts`` within [the model's first
        purchase - backfill policy, max(now, the model's clock) + skew], each item in the catalogue
        (unless the unknown-items policy is ``accept``).  One detail per offending field."""
        s = self.settings
        try:
            lo = online.data_start - timedelta(days=s.backfill_days)
        except OverflowError:  # a backfill policy reaching past year 1: no lower bound
            lo = datetime.min
        hi = max(utcnow(), online.hybrid.as_of) + timedelta(seconds=s.clock_skew_seconds)
        span = f"between {lo:%Y-%m-%dT%H:%M:%S} and {hi:%Y-%m-%dT%H:%M:%S} UTC"
        out = []
        for i, e in enumerate(events):
            if e.ts is not None and not lo <= e.ts <= hi:
                out.append(detail(["body", "events", i, "ts"], f"must lie {span} (the model's data start, "
                                  f"now plus {s.clock_skew_seconds:g}s of clock skew)", "ts_out_of_range"))
            if getattr(e, "category", None) is not None and e.category not in set(online.item_category.values()):
                out.append(detail(["body", "events", i, "category"], f"category {e.category} is not in the "
                                  f"catalogue of {online.version}", "unknown_category"))
            if e.item_id is not None and s.unknown_items == "reject" and not online.knows_item(e.item_id):
                out.append(detail(["body", "events", i, "item_id"], f"item {e.item_id} is not in the catalogue "
                                  f"of {online.version}", "unknown_item"))
        return out

    def ingest(self, events: pl.DataFrame, *, online: OnlineRecommender) -> int:
        """Store events (one batch of the log), fold in everything up to them, nudge the other workers.
        Unknown items are flagged (``flags = 'unknown_item'``) and never folded in."""
        events = events.with_columns(pl.col("item_id").fill_null(""))  # '': a category's not_interested
        flags = [None if online.knows_item(i) else "unknown_item" for i in events["item_id"].to_list()]
        events = events.with_columns(pl.Series("flags", flags, dtype=pl.String))
        with self._swap_lock:
            stored = self.store.add_events(events, model_version=online.version, received_at=utcnow())
            self._catch_up_locked()
        self.follower.notify()
        return stored

    def _foldable(self, rows: pl.DataFrame, online: OnlineRecommender) -> pl.DataFrame:
        ref = online.hybrid.reference_time
        skew = timedelta(seconds=self.settings.clock_skew_seconds)
        limit = pl.max_horizontal(pl.col("received_at"), pl.lit(online.hybrid.as_of)) + pl.lit(skew)
        return rows.filter((pl.col("ts") > ref) & (pl.col("ts") <= limit))

    def _fold(self, online: OnlineRecommender, rows: pl.DataFrame) -> None:
        """Fold log rows in, one stored batch at a time, in log order (what every worker does)."""
        fold_feedback(online, rows)  # dismissals hold whatever the model's reference time (recsys.feedback)
        rows = self._foldable(rows, online)
        if rows.height == 0:
            return
        for batch in rows.partition_by("batch", maintain_order=True):
            online.ingest(batch)

    def catch_up(self) -> int:
        """Fold in events other workers stored, and forget customers erased elsewhere (the follower's tick)."""
        with self._swap_lock:
            return self._catch_up_locked()

    def _catch_up_locked(self) -> int:
        online = self.online
        if online is None:
            return 0
        rows = self.store.events_after(self._watermark)
        if rows.height:
            self._fold(online, rows)
            self._watermark = int(rows["seq"].max())  # type: ignore[arg-type]
        self.apply_erasures()
        return rows.height

    # ------------------------------------------------------------ erasure
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

    def erase(self, customer_ids: list[str]) -> Any:
        """Erase in the store and in every stored model version, and forget in memory at once."""
        from recsys.privacy import erase_everywhere

        with self._swap_lock:
            self._catch_up_locked()  # events stored before the erasure are folded before it, as elsewhere
            known_now = {c for c in customer_ids if self.online is not None and self.online.knows_customer(c)}
            report = erase_everywhere(customer_ids, self.store, self.registry)
            if self.online is not None:
                self.online.forget(list(customer_ids))
            report.unknown = [c for c in report.unknown if c not in known_now]
            self._erasures_seen = -1
        self.follower.notify()
        return report

    # -------------------------------------------------------- model swaps
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
            load_feedback(fresh, self.store, days=self.settings.not_interested_days)
        except Exception as exc:  # noqa: BLE001 - a bad bundle must never take the service down
            self.last_error = f"cannot load {tag}: {exc}"
            log.error("model %s not loaded, %s: %s", tag, "keeping " + current if current else "not ready", exc)
            return False
        with self._swap_lock:
            upto = self.store.last_event_seq()
            events = self.store.events_after(0, upto=upto, ts_after=bundle.reference_time)
            self._fold(fresh, events)
            self.online = fresh  # the swap: one reference assignment
            self._watermark = upto
            self._erasures_seen = -1
            self.apply_erasures()
        self.last_error = None
        import gc

        gc.collect()  # the old version's objects go now, in the background thread, not during a request
        gc.freeze()
        log.info("model swap %s -> %s at %s UTC (loaded and %d customers precomputed in %.2fs, %d stored events "
                 "replayed)", current or "none", tag, f"{utcnow():%Y-%m-%dT%H:%M:%S}", ready,
                 time.perf_counter() - t0, events.height)
        return True

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
        self._thread.start()
        self.follower.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.watch_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("model watcher")

    def stop(self) -> None:
        self._stop.set()
        self.follower.stop()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

"""``LogFollower``: each worker reads what the other workers stored, within a fraction of a second.

Why: with ``recsys serve --workers 2`` (or several replicas) an event reaches one process; until the
others fold it in, the same customer's answers flip between personalised and anonymous depending on
which worker answers.  The shared store is the log (``events.seq``, recsys/store.py); every worker
polls it for rows past its watermark every ``interval`` seconds (default 0.25 s) — SQLite alone is
enough.  With a Redis URL, a worker that stored events publishes a nudge on a channel and every worker
reads the log at once instead of at its next poll; Redis only shortens the wait, the store stays the
truth, and a Redis outage falls back to polling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LogFollower", "CHANNEL"]

log = logging.getLogger("crosssell.service")
CHANNEL = "crosssell:events"


class LogFollower:
    """Call ``catch_up()`` every ``interval`` seconds, and at once when nudged (``notify``, Redis).

    Parameters
    ----------
    catch_up
        Reads and folds in new log rows and erasures; must not raise (errors are logged and retried).
    interval
        Seconds between polls.
    redis_url
        Optional ``redis://…``: publish/subscribe nudges on ``channel``.
    """

    def __init__(self, catch_up: Callable[[], Any], *, interval: float, redis_url: str | None = None,
                 channel: str = CHANNEL) -> None:
        self.catch_up = catch_up
        self.interval = interval
        self.redis_url = redis_url
        self.channel = channel
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._redis: Any = None
        self._warned = False

    def start(self) -> None:
        self._threads.append(threading.Thread(target=self._poll, name="log-follower", daemon=True))
        if self.redis_url:
            self._threads.append(threading.Thread(target=self._listen, name="log-nudges", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=2.0)

    def notify(self) -> None:
        """Tell every worker (this one included) that the log has new rows."""
        if not self.redis_url:
            return
        try:
            self._client().publish(self.channel, b"1")
        except Exception as exc:  # noqa: BLE001 - a nudge is an optimisation; the poll still runs
            self._warn(f"cannot publish to Redis ({type(exc).__name__}: {exc}); other workers poll instead")

    # ------------------------------------------------------------ threads
    def _poll(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.catch_up()
            except Exception:  # noqa: BLE001 - the follower must survive anything
                log.exception("reading the event log")

    def _listen(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                pubsub = self._client().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                delay = 0.5
                while not self._stop.is_set():
                    if pubsub.get_message(timeout=1.0) is not None:
                        self._wake.set()
                pubsub.close()
            except Exception as exc:  # noqa: BLE001 - reconnect with backoff, poll meanwhile
                self._warn(f"Redis subscription lost ({type(exc).__name__}: {exc}); polling every "
                           f"{self.interval}s until it is back")
                self._redis = None
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _client(self) -> Any:
        if self._redis is None:
            import redis

            assert self.redis_url is not None  # only called when a URL is configured
            self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=2)
        return self._redis

    def _warn(self, message: str) -> None:
        if not self._warned:  # once per outage, not once per event
            log.warning(message)
            self._warned = True


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (for callers and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()

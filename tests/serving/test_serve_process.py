"""``recsys serve`` / ``recsys demo`` as real processes on a free port: several workers agree on every
customer within a second of an event, and SIGTERM or Ctrl+C stops every process they started."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from recsys.bundle import Bundle
from recsys.registry import Registry
from serving.process import alive, descendants

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RECSYS = Path(sys.executable).parent / "recsys"
ADMIN, PUBLIC = "proc-admin-key", "proc-public-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    """Whether a new server could listen on the port now (as servers do, with SO_REUSEADDR: connections
    of the stopped service may linger in TIME_WAIT, which does not hold the port for a listener)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
        return True


def _call(url: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    """One request on a new connection (so successive calls can land on different workers)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "connection": "close"}
    if key:
        headers["x-api-key"] = key
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw.strip().startswith(b"{") else raw
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, None


class Server:
    """``recsys serve`` in a subprocess; ``stop(sig)`` sends the signal and checks everything is gone."""

    def __init__(self, tag: str, store: str, *, workers: int, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(RECSYS), "serve", "--model", tag, "--port", str(self.port), "--store", store,
                 "--api-key", ADMIN, "--public-key", PUBLIC, "--workers", str(workers)],
                cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        self.workers = workers

    def wait_ready(self, timeout: float = 120) -> set[int]:
        """Until every worker answers /readyz; returns the worker pids seen on /status."""
        deadline, pids = time.monotonic() + timeout, set()
        while time.monotonic() < deadline and len(pids) < self.workers:
            if self.proc.poll() is not None:
                pytest.fail("recsys serve exited:\n" + self.log.read_text()[-3000:])
            status, body = _call(f"{self.url}/status")
            if status == 200 and body["ready"]:
                pids.add(body["worker"])
            else:
                time.sleep(0.3)
        if len(pids) < self.workers:
            pytest.fail(f"only workers {pids} became ready:\n" + self.log.read_text()[-3000:])
        return pids

    def stop(self, sig: int = signal.SIGTERM, within: float = 10.0) -> None:
        family = descendants(self.proc.pid)
        assert family, "recsys serve started no processes"
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"recsys serve did not exit within {within}s of {signal.Signals(sig).name}")
        while time.monotonic() - t0 < within and (any(alive(p) for p in family) or not _port_free(self.port)):
            time.sleep(0.1)
        left = [p for p in family if alive(p)]
        assert not left, f"still running {time.monotonic() - t0:.1f}s after {signal.Signals(sig).name}: {left}"
        assert _port_free(self.port), f"port {self.port} still taken"

    def kill(self) -> None:
        """Clean-up after a failure (a no-op when ``stop`` succeeded)."""
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tag(synthetic_bundle_dir: Path) -> str:
    if not RECSYS.exists():
        pytest.skip(f"{RECSYS} not installed (pip install -e .)")
    bundle = Bundle.load(synthetic_bundle_dir)
    return Registry().save(bundle.write_into, metadata={"headline": {"all.map": 0.1}}, version="proc-v1")


def _redis_url() -> str:
    url = os.environ.get("RECSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Redis here"
        pytest.skip(f"Redis not reachable at {url}: {type(exc).__name__}")
    return url


def _agreement(server: Server, bundle: Bundle, victim_index: int) -> None:
    """A purchase, a cart and an erasure posted to one worker: within 1 s every answer from every
    worker reflects them (before, the other worker kept answering as if nothing happened)."""
    trousers = bundle.catalogue.filter(pl.col("category") == "trousers")["item_id"][0]
    buyer, shopper = "two-workers-buyer", "two-workers-shopper"
    victim = bundle.hybrid.history.customers.ids[victim_index]  # erasure rewrites the stored bundle: one per test
    ask = {"customer_id": buyer, "n": 6}
    cart_ask = {"customer_id": shopper, "placement": "cart", "n": 6}
    anonymous = _call(f"{server.url}/recommend", {"customer_id": "nobody", "n": 6})[1]["items"]
    before_erase = _call(f"{server.url}/recommend", {"customer_id": victim, "n": 6})[1]["items"]
    assert [i["item_id"] for i in before_erase] != [i["item_id"] for i in anonymous]

    status, _ = _call(f"{server.url}/events", {"events": [
        {"customer_id": buyer, "item_id": trousers, "event": "purchase"},
        {"customer_id": shopper, "item_id": trousers, "event": "cart"}]}, PUBLIC)
    assert status == 200
    assert _call(f"{server.url}/admin/erase", {"customer_ids": [victim]}, ADMIN)[0] == 200
    time.sleep(1.0)
    answers, carts, erased, pids = [], [], [], set()
    for _ in range(30):
        answers.append([i["item_id"] for i in _call(f"{server.url}/recommend", ask)[1]["items"]])
        carts.append([i["item_id"] for i in _call(f"{server.url}/recommend", cart_ask)[1]["items"]])
        erased.append([i["item_id"] for i in _call(f"{server.url}/recommend", {"customer_id": victim, "n": 6})[1]["items"]])
        pids.add(_call(f"{server.url}/status")[1]["worker"])
    assert len(pids) == server.workers, f"the requests reached only workers {pids}"
    assert len({tuple(a) for a in answers}) == 1, answers
    assert answers[0] != [i["item_id"] for i in anonymous] and trousers not in answers[0]  # personalised
    assert len({tuple(c) for c in carts}) == 1 and trousers not in carts[0]
    assert all(e == [i["item_id"] for i in anonymous] for e in erased)  # forgotten everywhere


def test_two_workers_agree_within_a_second_and_sigterm_stops_them(  # type: ignore[no-untyped-def]
        tag: str, synthetic_bundle_dir: Path, tmp_path: Path) -> None:
    server = Server(tag, f"sqlite:///{tmp_path / 'state.db'}", workers=2, env={}, log=tmp_path / "serve.log")
    try:
        server.wait_ready()
        _agreement(server, Bundle.load(synthetic_bundle_dir), 5)
        server.stop(signal.SIGTERM)
    finally:
        server.kill()


def test_redis_nudge_reaches_workers_that_poll_rarely(  # type: ignore[no-untyped-def]
        tag: str, synthetic_bundle_dir: Path, tmp_path: Path) -> None:
    """With --redis, workers read the log when nudged: agreement within 1 s although they poll every 30 s."""
    url = _redis_url()
    server = Server(tag, f"sqlite:///{tmp_path / 'state.db'}", workers=2, log=tmp_path / "serve.log",
                    env={"RECSYS_REDIS_URL": url, "RECSYS_SYNC_SECONDS": "30"})
    try:
        server.wait_ready()
        time.sleep(1.5)  # the subscriptions are up
        _agreement(server, Bundle.load(synthetic_bundle_dir), 6)
        server.stop(signal.SIGINT)  # Ctrl+C
    finally:
        server.kill()


@pytest.mark.slow  # Ctrl+C on two workers runs by default in the Redis test
def test_ctrl_c_stops_a_single_worker_service(tag: str, tmp_path: Path) -> None:
    server = Server(tag, f"sqlite:///{tmp_path / 'state.db'}", workers=1, env={}, log=tmp_path / "serve.log")
    try:
        server.wait_ready()
        server.stop(signal.SIGINT)
    finally:
        server.kill()


@pytest.mark.slow
def test_sigterm_stops_recsys_demo(tmp_path: Path) -> None:
    """``recsys demo`` trains first (tens of seconds), then serves; SIGTERM stops the service it started."""
    port = _free_port()
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(RECSYS), "demo", "--workdir", str(tmp_path / "demo"), "--port", str(port)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    server = Server.__new__(Server)
    server.proc, server.port, server.url, server.log, server.workers = proc, port, f"http://127.0.0.1:{port}", log, 1
    try:
        deadline = time.monotonic() + 300
        while "Ctrl+C stops the service" not in log.read_text() and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail("recsys demo exited:\n" + log.read_text()[-3000:])
            time.sleep(0.5)
        server.stop(signal.SIGTERM)
    finally:
        server.kill()

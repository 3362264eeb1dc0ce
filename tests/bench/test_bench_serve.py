"""``bench/serve.py``'s realistic traffic: who visits, in which order the requests go out, and that the
wrk script sends and logs every request exactly once (checked against a stdlib HTTP server)."""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from serving.schemas import ComplementsRequest, EventsRequest, RecommendRequest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(load_bench: Any) -> Any:
    return load_bench("serve")


def _shop(n_customers: int = 60, n_items: int = 30) -> tuple[list[str], list[float], list[str], list[float]]:
    customers = [f"c{k:03d}" for k in range(n_customers)]
    activity = [float((k * 37) % n_customers + 1) for k in range(n_customers)]  # most active: activity 60
    items = [f"i{k:03d}" for k in range(n_items)]
    return customers, activity, items, [float(n_items - k) for k in range(n_items)]


def test_visits_reach_the_distinct_customers_zipf_by_activity_with_events_first(bench: Any) -> None:
    customers, activity, items, weights = _shop()
    visits, summary = bench.realistic_visits(customers, activity, items, weights, distinct=400, event_share=0.2,
                                             complements_share=0.1, seed=3)
    who = []
    for visit in visits:
        *events, last = visit
        method, path, body = last
        assert method == "POST" and path in ("/recommend", "/complements")
        if path == "/complements":
            ComplementsRequest.model_validate_json(body)
            assert not events  # product pages post no events
            continue
        req = RecommendRequest.model_validate_json(body)
        who.append(req.customer_id)
        for m, p, b in events:  # the customer's own events, before their recommendation
            assert (m, p) == ("POST", "/events")
            assert {e.customer_id for e in EventsRequest.model_validate_json(b).events} == {req.customer_id}
    assert summary["distinct_customers"] == 400
    assert summary["distinct_known_customers"] == 60  # the known ones are the head of the Zipf law
    counts = Counter(who)
    most_active = customers[max(range(60), key=lambda k: activity[k])]
    assert counts.most_common(1)[0][0] == most_active
    assert 0.1 < summary["visits_with_events"] / len(visits) < 0.3
    assert summary["requests"] == sum(len(v) for v in visits)
    again, _ = bench.realistic_visits(customers, activity, items, weights, distinct=400, event_share=0.2,
                                      complements_share=0.1, seed=3)
    assert again == visits  # seeded


def test_deal_keeps_each_visit_whole_and_in_order(bench: Any) -> None:
    visits = [[("POST", "/events", f"e{k}"), ("POST", "/recommend", f"r{k}")] if k % 3 == 0
              else [("POST", "/recommend", f"r{k}")] for k in range(20)]
    streams = bench.deal(visits, 4)
    assert sorted(r for s in streams for r in s) == sorted(r for v in visits for r in v)
    for s in streams:
        bodies = [b for _, _, b in s]
        for k in range(0, 20, 3):
            if f"e{k}" in bodies:
                assert bodies[bodies.index(f"e{k}") + 1] == f"r{k}"
        assert [int(b[1:]) for b in bodies if b.startswith("r")] == sorted(int(b[1:]) for b in bodies if b.startswith("r"))


def test_summarize_per_path_and_per_window(bench: Any) -> None:
    rows = [("/recommend", "200", str(1_000_000 + k * 10_000), "2000") for k in range(100)]
    rows += [("/events", "422", "1500000", "5000")]
    s = bench.summarize(rows, window_s=0.5)
    assert s["paths"]["/recommend"]["requests"] == 100 and s["paths"]["/recommend"]["p50"] == 2.0
    assert s["paths"]["/events"]["non2xx"] == 1 and s["all"]["non2xx"] == 1
    assert s["all"]["rps"] == pytest.approx(101 / 0.992, rel=1e-3)
    assert sum(w["requests"] for w in s["windows"]) == 101


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the service
    seen: ClassVar[list[tuple[int, str, str]]] = []
    lock = threading.Lock()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        with self.lock:
            self.seen.append((self.client_address[1], self.path, body))
        ok = self.path == "/livez" or self.headers.get("x-api-key") == "bench-public-key"
        self.send_response(200 if ok else 401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # wrk resets its connections when it stops


@pytest.mark.integration
def test_wrk_sends_every_request_once_in_order_and_logs_it(bench: Any, tmp_path: Path) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    customers, activity, items, weights = _shop()
    visits, summary = bench.realistic_visits(customers, activity, items, weights, distinct=150, event_share=0.3, seed=1)
    streams = bench.deal(visits, 3)
    server = _Server(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        r = bench.run_streams(wrk, base, streams, tmp_path / "once", loop=False, seconds=60)
    finally:
        server.shutdown()
        server.server_close()
    assert r["complete"] and r["errors"] == 0 and r["wall_s"] < 30  # stopped by itself, not by -d
    assert r["all"]["requests"] == summary["requests"]  # every request logged once (the head /livez is not)
    posted = [(p, b) for _, p, b in _Recorder.seen if p != "/livez"]
    assert sorted(posted) == sorted((p, b) for v in visits for _, p, b in v)
    by_connection: dict[int, list[tuple[str, str]]] = {}
    for port, path, body in _Recorder.seen:
        by_connection.setdefault(port, []).append((path, body))
    for sent in by_connection.values():  # on each connection, a customer's events right before their recommend
        for k, (path, body) in enumerate(sent):
            if path == "/events":
                customer = json.loads(body)["events"][0]["customer_id"]
                assert sent[k + 1][0] == "/recommend" and json.loads(sent[k + 1][1])["customer_id"] == customer

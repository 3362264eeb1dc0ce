"""What the service answers at its edges: any request gets a 2xx or a 4xx JSON error (never a 5xx), keys
have scopes, event timestamps and items are checked against the served model, and replaying the stored
events after a restart gives the state the service had before it."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from recsys.bundle import Bundle
from recsys.registry import Registry

pytestmark = pytest.mark.integration
ADMIN, PUBLIC = "edges-admin-key", "edges-public-key"
POST_ROUTES = ["/recommend", "/complements", "/similar", "/popular", "/events", "/admin/erase",
               "/admin/consent", "/admin/reload"]


@pytest.fixture(scope="module")
def service(synthetic_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory, fresh_bentoml_metrics: None):  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    bundle = Bundle.load(synthetic_bundle_dir)
    tag = Registry().save(bundle.write_into, metadata={"headline": {"all.map": 0.1}}, version="edges-v1")
    state_dir = tmp_path_factory.mktemp("edges-state")
    saved = dict(os.environ)
    os.environ.update({"RECSYS_STORE_URI": f"sqlite:///{state_dir / 'state.db'}", "RECSYS_API_KEY": ADMIN,
                       "RECSYS_PUBLIC_KEY": PUBLIC, "RECSYS_MODEL": tag, "RECSYS_WATCH_SECONDS": "5",
                       "RECSYS_MAX_BODY_BYTES": "1000000"})
    from serving.service import CrossSell

    try:
        with TestClient(app=CrossSell.to_asgi()) as client:
            import serving.service

            client.bundle = bundle  # type: ignore[attr-defined]
            client.tag = tag  # type: ignore[attr-defined]
            client.state = serving.service._state  # type: ignore[attr-defined]
            yield client
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _events(service, events: list[dict], key: str = PUBLIC):  # type: ignore[no-untyped-def]
    return service.post("/events", json={"events": events}, headers={"x-api-key": key})


def _locs(response) -> list[list]:  # type: ignore[no-untyped-def]
    return [d["loc"] for d in response.json()["detail"]]


# ------------------------------------------------------------------------------------- 2. never a 5xx
@pytest.mark.parametrize("route", POST_ROUTES)
def test_multipart_is_415_on_every_post_route(service, route: str) -> None:  # type: ignore[no-untyped-def]
    """multipart/form-data without a boundary was a 500 on every POST route (BentoML parsed it first)."""
    headers = {"content-type": "multipart/form-data", "x-api-key": ADMIN}
    r = service.post(route, content=b"--x\r\n", headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["detail"][0]["loc"] == ["header", "content-type"]
    r = service.post(route, files={"f": ("a.txt", b"hello")}, headers={"x-api-key": ADMIN})
    assert r.status_code == 415


@pytest.mark.parametrize("route", ["/events", "/admin/erase", "/admin/consent", "/admin/reload"])
def test_key_is_checked_before_the_body(service, route: str) -> None:  # type: ignore[no-untyped-def]
    """No key: 401, whatever the body (too large, not JSON, multipart) — nothing of it is read."""
    for body, ctype in ((b"{" + b" " * 2_000_000 + b"}", "application/json"), (b"--x\r\n", "multipart/form-data"),
                        (b"{not json", "application/json")):
        r = service.post(route, content=body, headers={"content-type": ctype})
        assert r.status_code == 401, (route, ctype, r.text)
        assert r.json()["detail"][0]["loc"] == ["header", "x-api-key"]
        assert r.headers["www-authenticate"].startswith("ApiKey")


def test_body_over_the_limit_is_413(service) -> None:  # type: ignore[no-untyped-def]
    big = b'{"customer_ids": [' + b'"a",' * 300_000 + b'"a"]}'
    r = service.post("/admin/erase", content=big, headers={"x-api-key": ADMIN, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["detail"][0]["loc"] == ["body"]

    def chunks():  # type: ignore[no-untyped-def]  # no content-length: refused while reading
        yield b'{"n": 3, "filters": {"categories": ["'
        for _ in range(40):
            yield b"x" * 50_000
        yield b'"]}}'

    r = service.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize(("body", "status", "loc"), [
    (b'{"n": "5"}', 422, ["body", "n"]),
    (b'{"n": 5.5}', 422, ["body", "n"]),
    (b'{"explain": "yes"}', 422, ["body", "explain"]),
    (b"{not json", 400, ["body"]),
    (b"", 422, ["body"]),
    (b"[]", 422, ["body"]),
])
def test_wrong_types_are_4xx_naming_the_field(service, body: bytes, status: int, loc: list) -> None:  # type: ignore[no-untyped-def]
    r = service.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"] and any(d["loc"][: len(loc)] == loc for d in r.json()["detail"]), r.text


def test_refusals_log_one_info_line_and_server_errors_a_traceback(service, caplog: pytest.LogCaptureFixture,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    service.post("/recommend", json={"n": "five"})
    service.post("/admin/erase", json={"customer_ids": ["x"]})
    refusals = [r for r in caplog.records if r.name == "crosssell.service" and "->" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.INFO, logging.INFO]
    assert "422" in refusals[0].getMessage() and "n:" in refusals[0].getMessage()
    assert "five" not in caplog.text  # the values sent are never logged
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    caplog.clear()
    online = service.state.online

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    monkeypatch.setattr(online, "popular", broken)
    r = service.post("/popular", json={"n": 3})
    assert r.status_code == 500 and "error" in r.json()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in errors)


# ------------------------------------------------------------------------------------------- 3. keys
def test_keys_have_scopes(service) -> None:  # type: ignore[no-untyped-def]
    click = [{"customer_id": "C000010", "item_id": "I00050", "event": "click"}]
    assert _events(service, click, PUBLIC).status_code == 200
    assert _events(service, click, ADMIN).status_code == 200
    assert _events(service, click, PUBLIC + "x").status_code == 401
    assert _events(service, click, PUBLIC[:-1]).status_code == 401
    erase = {"customer_ids": ["nobody-at-all"]}
    assert service.post("/admin/erase", json=erase, headers={"x-api-key": PUBLIC}).status_code == 403
    assert service.post("/admin/erase", json=erase, headers={"x-api-key": ADMIN}).status_code == 200
    consent = {"consents": [{"customer_id": "C000011", "email_consent": True}]}
    assert service.post("/admin/consent", json=consent, headers={"x-api-key": PUBLIC}).status_code == 403
    assert service.post("/admin/consent", json=consent, headers={"x-api-key": ADMIN}).json() == {"updated": 1}
    assert service.state.store.consent()["C000011"] is True
    r = service.post("/admin/reload", json={}, headers={"x-api-key": ADMIN})
    assert r.status_code == 200 and r.json()["model_version"] == service.tag and r.json()["swapped"] is False


def test_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    from serving import auth

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert auth.scope_of("pub", admin_key="adm", public_key="pub") == "public"
    assert len(calls) == 2  # both keys compared, with compare_digest, even after a match
    assert auth.scope_of(None, admin_key=None, public_key=None) is None


# ----------------------------------------------------------------------------- 1. events: time, items
def test_timestamps_outside_the_window_are_422_and_never_move_the_clock(service) -> None:  # type: ignore[no-untyped-def]
    online = service.state.online
    clock = online.clock
    for ts in ("9999-12-31T23:59:59", "1970-01-01T00:00:00", "2999-01-01T00:00:00Z",
               (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()):
        r = _events(service, [{"customer_id": "C000010", "item_id": "I00050", "event": "purchase", "ts": ts}])
        assert r.status_code == 422, (ts, r.text)
        assert _locs(r) == [["body", "events", 0, "ts"]]
    assert online.clock == clock
    soon = (datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat()  # within the 5-minute skew
    assert _events(service, [{"customer_id": "C000012", "item_id": "I00050", "event": "click", "ts": soon}]
                   ).status_code == 200
    # an event without ts is stamped with the (unchanged) data clock, not with a client's future
    r = _events(service, [{"customer_id": "C000013", "item_id": "I00051", "event": "purchase"}])
    assert r.status_code == 200
    stored = service.state.store.events(["C000013"])
    assert stored["ts"].to_list() == [clock]
    reasons = service.post("/recommend", json={"customer_id": "C000013", "n": 12}).json()["items"]
    assert all((i["reason"]["source_date"] or "") < "2027" for i in reasons)


def test_unknown_items_are_422_naming_the_item(service) -> None:  # type: ignore[no-untyped-def]
    before = service.state.store.count("events")
    r = _events(service, [{"customer_id": "C000010", "item_id": "I00050", "event": "cart"},
                          {"customer_id": "C000010", "item_id": "NO-SUCH-ITEM", "event": "purchase"}])
    assert r.status_code == 422 and _locs(r) == [["body", "events", 1, "item_id"]]
    assert "NO-SUCH-ITEM" in r.json()["detail"][0]["msg"]
    assert service.state.store.count("events") == before  # nothing of a refused batch is stored


def test_unknown_items_accepted_by_policy_are_stored_flagged_and_never_recommended(  # type: ignore[no-untyped-def]
        service, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    state = service.state
    monkeypatch.setattr(state, "settings", dataclasses.replace(state.settings, unknown_items="accept"))
    r = _events(service, [{"customer_id": "C000020", "item_id": "NEW-ITEM-1", "event": "purchase"},
                          {"customer_id": "C000020", "item_id": "NEW-ITEM-1", "event": "cart"}])
    assert r.status_code == 200, r.text
    assert r.json()["unknown_items"] == 2 and r.json()["purchases"] == 0
    log = state.store.events_after(0).filter(pl.col("customer_id") == "C000020")
    assert log["flags"].to_list() == ["unknown_item", "unknown_item"]
    assert "NEW-ITEM-1" not in state.online.carts.get("C000020", [])
    for placement in ("for_you", "cart", "home"):
        items = service.post("/recommend", json={"customer_id": "C000020", "placement": placement, "n": 20,
                                                 "context_item_ids": ["NEW-ITEM-1"]}).json()["items"]
        assert "NEW-ITEM-1" not in [i["item_id"] for i in items]


def test_restart_replays_the_store_to_the_same_state(service) -> None:  # type: ignore[no-untyped-def]
    """Post events (carts, purchases with and without ts, out of order, clicks), then build the state
    again from the same store, as a restart does: every answer, cart, history and the clock agree."""
    from serving.state import ServingState

    live = service.state
    as_of = live.online.hybrid.as_of
    at = lambda hours: (as_of + timedelta(hours=hours)).isoformat()  # noqa: E731
    customers = ["C000030", "C000031", "new-visitor-1", "new-visitor-2"]
    batches = [
        [{"customer_id": "C000030", "item_id": "I00101", "event": "cart"},
         {"customer_id": "C000030", "item_id": "I00102", "event": "purchase", "ts": at(3)}],
        [{"customer_id": "new-visitor-1", "item_id": "I00050", "event": "purchase", "ts": at(1)},
         {"customer_id": "new-visitor-1", "item_id": "I00060", "event": "cart", "ts": at(2)}],
        [{"customer_id": "C000031", "item_id": "I00200", "event": "purchase"},
         {"customer_id": "new-visitor-2", "item_id": "I00070", "event": "cart"},
         {"customer_id": "C000030", "item_id": "I00103", "event": "click", "ts": at(4)}],
        [{"customer_id": "C000031", "item_id": "I00201", "event": "purchase", "ts": at(5)},
         {"customer_id": "new-visitor-1", "item_id": "I00061", "event": "cart", "ts": at(0.5)}],
    ]
    for batch in batches:
        assert _events(service, batch).status_code == 200
    asks = [{"customer_id": c, "placement": p, "n": 10} for c in [*customers, "C000001", "C000002"]
            for p in ("for_you", "cart", "product_page")]
    before = [service.post("/recommend", json=a).json() for a in asks]

    restarted = ServingState(live.settings)
    assert restarted.refresh()
    fresh, old = restarted.online, live.online
    assert fresh is not None and old is not None
    assert fresh.clock == old.clock
    assert {c: fresh.carts.get(c) for c in customers} == {c: old.carts.get(c) for c in customers}
    for c in customers:
        assert fresh.hybrid.history.of(c).equals(old.hybrid.history.of(c)), c
    from serving.service import _body, _items

    for ask, answer in zip(asks, before, strict=True):
        frame = fresh.recommend(ask["customer_id"], placement=ask["placement"], n=ask["n"])
        import json

        assert json.loads(_body(fresh, _items(frame, fresh, True))) == answer, ask
    restarted.store.close()

"""The real service: POST /consent and /unsubscribe (admin key, latest wins, history, suppression), and
not_interested events through /events (an item, a category) that the customer's widgets never show again."""

from __future__ import annotations

import polars as pl
import pytest

from recsys.store import Store

pytestmark = pytest.mark.integration
KEY = "admin-key"
PUBLIC = "public-key"
ADMIN = {"x-api-key": KEY}
WEB = {"x-api-key": PUBLIC}
PLACEMENTS = ("for_you", "home", "email", "product_page", "cart")


@pytest.fixture(scope="module")
def service(asgi_service):  # type: ignore[no-untyped-def]
    return asgi_service("consent-feedback-v1", admin_key=KEY, public_key=PUBLIC)


def _items(service, cid: str, placement: str, n: int = 12, context: list[str] | None = None) -> list[dict]:  # type: ignore[no-untyped-def]
    r = service.post("/recommend", json={"customer_id": cid, "placement": placement, "n": n,
                                         "context_item_ids": context or []})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_consent_records_latest_wins_and_history_is_kept(service) -> None:  # type: ignore[no-untyped-def]
    new, old = "2025-06-01T10:00:00Z", "2025-01-01T10:00:00Z"
    r = service.post("/consent", headers=ADMIN, json={"records": [
        {"customer_id": "C000001", "granted": False, "ts": new, "source": "crm"},
        {"customer_id": "C000001", "granted": True, "ts": old, "source": "crm-late-export"},
        {"customer_id": "C000001", "channel": "sms", "granted": True}]})
    assert r.status_code == 200, r.text
    assert r.json() == {"recorded": 3, "skipped_erased": 0}
    store = Store(service.store_uri)
    assert store.consent()["C000001"] is False and store.consent("sms")["C000001"] is True
    assert store.count("consent_history", "C000001") == 3
    store.close()


@pytest.mark.parametrize(("headers", "body", "status", "loc"), [
    (WEB, {"records": [{"customer_id": "C1", "granted": True}]}, 403, ["header", "x-api-key"]),
    ({}, {"records": [{"customer_id": "C1", "granted": True}]}, 401, ["header", "x-api-key"]),
    (ADMIN, {"records": [{"customer_id": "C1", "granted": "yes"}]}, 422, ["body", "records", 0, "granted"]),
    (ADMIN, {"records": [{"customer_id": "C1", "granted": True, "channel": "fax"}]}, 422,
     ["body", "records", 0, "channel"]),
    (ADMIN, {"records": [{"customer_id": "C1", "granted": True, "ts": "2999-01-01T00:00:00Z"}]}, 422,
     ["body", "records", 0, "ts"]),
    (ADMIN, {"records": []}, 422, ["body", "records"]),
])
def test_consent_refusals_name_the_field(service, headers, body, status, loc) -> None:  # type: ignore[no-untyped-def]
    r = service.post("/consent", headers=headers, json=body)
    assert r.status_code == status, r.text
    assert loc in [d["loc"] for d in r.json()["detail"]]


def test_unsubscribe_withdraws_and_can_suppress(service) -> None:  # type: ignore[no-untyped-def]
    r = service.post("/unsubscribe", headers=ADMIN, json={"customer_id": "C000002", "suppress": True,
                                                          "reason": "complaint"})
    assert r.status_code == 200 and r.json() == {"recorded": 1, "suppressed": True, "skipped_erased": 0}
    assert service.post("/unsubscribe", headers=WEB, json={"customer_id": "C000002"}).status_code == 403
    store = Store(service.store_uri)
    assert store.consent()["C000002"] is False and "C000002" in store.suppressed()
    assert store.consent_history(["C000002"])["source"].to_list() == ["unsubscribe"]
    store.erase(["C000003"])
    store.close()
    gone = service.post("/unsubscribe", headers=ADMIN, json={"customer_id": "C000003"}).json()
    assert gone == {"recorded": 0, "suppressed": False, "skipped_erased": 1}


def test_a_dismissed_item_is_never_shown_again(service) -> None:  # type: ignore[no-untyped-def]
    cid = "C000010"
    top = _items(service, cid, "for_you")[0]["item_id"]
    r = service.post("/events", headers=WEB, json={"events": [
        {"customer_id": cid, "item_id": top, "event": "not_interested", "source": "widget:for_you"}]})
    assert r.status_code == 200, r.text
    for placement in PLACEMENTS:
        assert top not in {i["item_id"] for i in _items(service, cid, placement, n=30)}, placement
    # not even as a complement of the page it is the natural partner of, nor with filters asking for it
    assert top not in {i["item_id"] for i in _items(service, cid, "product_page", n=30, context=[top])}
    store = Store(service.store_uri)
    stored = store.events_of(["not_interested"], customer_ids=[cid])
    assert stored["item_id"].to_list() == [top] and stored["source"].to_list() == ["widget:for_you"]
    store.close()


def test_a_dismissed_category_is_never_shown_again(service) -> None:  # type: ignore[no-untyped-def]
    cid = "C000020"
    first = _items(service, cid, "for_you")
    category = first[0]["category"]
    r = service.post("/events", headers=WEB, json={"events": [
        {"customer_id": cid, "category": category, "event": "not_interested"}]})
    assert r.status_code == 200 and r.json()["unknown_items"] == 0, r.text
    for placement in PLACEMENTS:
        shown = _items(service, cid, placement, n=20)
        assert len(shown) == 20 and category not in {i["category"] for i in shown}, placement
    ctx_item = service.bundle.catalogue.filter(pl.col("category") == category)["item_id"][0]
    assert category not in {i["category"] for i in _items(service, cid, "product_page", n=20, context=[ctx_item])}
    store = Store(service.store_uri)
    row = store.events_of(["not_interested"], customer_ids=[cid]).row(0, named=True)
    assert (row["item_id"], row["category"]) == ("", category)
    store.close()


@pytest.mark.parametrize(("event", "loc"), [
    ({"customer_id": "C1", "event": "not_interested"}, ["body", "events", 0]),
    ({"customer_id": "C1", "event": "purchase"}, ["body", "events", 0]),
    ({"customer_id": "C1", "event": "purchase", "item_id": "I00001", "category": "belts"}, ["body", "events", 0]),
    ({"customer_id": "C1", "event": "not_interested", "category": "no-such-category"},
     ["body", "events", 0, "category"]),
])
def test_bad_feedback_events_name_the_field(service, event, loc) -> None:  # type: ignore[no-untyped-def]
    r = service.post("/events", headers=WEB, json={"events": [event]})
    assert r.status_code == 422, r.text
    assert loc in [d["loc"] for d in r.json()["detail"]]

"""The real service: GET /customers/{id}/categories — admin key only, the served model's affinities and
where those categories lead, errors naming the field."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration
KEY = "admin-key"
PUBLIC = "public-key"


@pytest.fixture(scope="module")
def service(asgi_service):  # type: ignore[no-untyped-def]
    return asgi_service("customer-categories-v1", admin_key=KEY, public_key=PUBLIC)


def test_top_categories_are_the_models_with_their_complements(service) -> None:  # type: ignore[no-untyped-def]
    bundle = service.bundle
    cid = bundle.hybrid.history.customers.ids[0]
    r = service.get(f"/customers/{cid}/categories", params={"n": 3}, headers={"x-api-key": KEY})
    assert r.status_code == 200, r.text
    body = r.json()
    want = bundle.hybrid.category_affinity.top_categories(cid, 3)
    assert body["customer_id"] == cid and body["level"] == "category" and body["model_version"]
    assert [c["category"] for c in body["categories"]] == want["category"].to_list()
    assert [c["affinity"] for c in body["categories"]] == pytest.approx(want["affinity"].to_list(), rel=1e-5)
    graph = bundle.hybrid.category_complements.graph_frame()
    for c in body["categories"]:
        expected = graph.filter((graph["source"] == c["category"]) & (graph["rank"] <= 3)).sort("rank")
        assert c["complements"] == expected["target"].to_list()


@pytest.mark.parametrize(("path", "headers", "status", "loc"), [
    ("/customers/C000001/categories", {}, 401, ["header", "x-api-key"]),
    ("/customers/C000001/categories", {"x-api-key": PUBLIC}, 403, ["header", "x-api-key"]),
    ("/customers/NOBODY/categories", {"x-api-key": KEY}, 404, ["path", "customer_id"]),
    ("/customers/C000001/categories?n=0", {"x-api-key": KEY}, 422, ["query", "n"]),
    ("/customers/C000001/categories?n=x", {"x-api-key": KEY}, 422, ["query", "n"]),
])
def test_refusals_name_the_field(service, path, headers, status, loc) -> None:  # type: ignore[no-untyped-def]
    r = service.get(path, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["detail"][0]["loc"] == loc

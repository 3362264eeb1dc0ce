"""The storefront demo page, end to end in headless Chromium against the real service.

A real ``bentoml serve`` process (synthetic-shop bundle, ``RECSYS_DEMO=1``) and Debian's chromium +
chromedriver driven by Selenium: pick a trousers buyer, see belts or shoes whose reason names the
trousers, add to the cart (a stored cart event), see the cart complements change, and the page at phone
width without horizontal scrolling.  Screenshots go to the test's tmp dir and to
``bench/results/demo-*.png`` (git-ignored).  The JSON helpers and the RECSYS_DEMO switch are also tested
in-process, without a browser.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest

from recsys.bundle import Bundle

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
ARTEFACTS = ROOT / "bench" / "results"
KEY = "demo-page-key"  # the admin key: never in the page
PUBLIC_KEY = "demo-page-public-key"  # the page's key: reads and storefront events
WAIT = 30.0  # seconds the browser may take for one step (a wait, never an assertion on time)


def _skip_without_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium and chromium-driver "
                    "(.ci/run does as root)")
    if not CHROMEDRIVER.exists():
        pytest.skip(f"{CHROMEDRIVER} not found: install Debian's chromium-driver (.ci/run does as root)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium; part of the test extra)")


def _trousers_ids(bundle: Bundle) -> set[str]:
    return set(bundle.catalogue.filter(pl.col("category") == "trousers")["item_id"].to_list())


def _latest_order_items(bundle: Bundle, customer_id: str) -> set[str]:
    h = bundle.hybrid.history.frame.filter(pl.col("customer_id") == customer_id)
    return set(h.filter(pl.col("ts") == pl.col("ts").max())["item_id"].to_list())


# ---------------------------------------------------------------------------------------------------------
# The JSON helpers and the switch, in-process (no browser, no server process)
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def helper_app(synthetic_bundle_dir: Path):  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from recsys.online import OnlineRecommender
    from recsys.rules import load_placements
    from serving.demo import demo_routes

    bundle = Bundle.load(synthetic_bundle_dir)
    placements = load_placements(ROOT / "configs" / "placements.yaml")
    online = OnlineRecommender(bundle, placements, version="crosssell:t1")
    state = SimpleNamespace(online=online, settings=SimpleNamespace(api_key="admin-secret-key",
                                                                    public_key="k</script><b>x"))
    switch = {"on": True}
    app = Starlette(routes=demo_routes(lambda: state, enabled=lambda: switch["on"]))
    with TestClient(app) as client:
        client.bundle = bundle  # type: ignore[attr-defined]
        client.switch = switch  # type: ignore[attr-defined]
        client.online = online  # type: ignore[attr-defined]
        yield client
    switch["on"] = True


ROUTES = ["/demo", "/demo/static/demo.js", "/demo/static/demo.css", "/demo/customers?category=trousers",
          "/demo/customers/C000010/history", "/demo/items?q=belt"]


@pytest.mark.parametrize("route", ROUTES)
def test_every_demo_route_is_404_when_off(helper_app, route: str) -> None:  # type: ignore[no-untyped-def]
    helper_app.switch["on"] = False
    try:
        r = helper_app.get(route)
    finally:
        helper_app.switch["on"] = True
    assert r.status_code == 404
    assert "k</script>" not in r.text and "C000010" not in r.text


def test_default_switch_is_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.demo import demo_enabled

    monkeypatch.delenv("RECSYS_DEMO", raising=False)
    assert demo_enabled() is False
    for off in ("0", "false", ""):
        monkeypatch.setenv("RECSYS_DEMO", off)
        assert demo_enabled() is False
    monkeypatch.setenv("RECSYS_DEMO", "1")
    assert demo_enabled() is True


def test_page_injects_config_as_inert_json(helper_app) -> None:  # type: ignore[no-untyped-def]
    r = helper_app.get("/demo")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert "</script><b>" not in r.text  # the key cannot close the script element
    raw = re.search(r'<script type="application/json" id="demo-config">(.*?)</script>', r.text, re.S)
    assert raw is not None
    config = json.loads(raw.group(1))
    assert config["apiKey"] == "k</script><b>x"  # the public key
    assert "admin-secret-key" not in r.text  # never the admin key, which can call /admin/erase
    assert config["modelVersion"] == "crosssell:t1"
    assert config["defaultCategory"] == "trousers"
    assert set(config["categories"]) == set(helper_app.bundle.catalogue["category"].unique().to_list())


def test_static_assets_are_a_fixed_list(helper_app) -> None:  # type: ignore[no-untyped-def]
    assert helper_app.get("/demo/static/demo.js").headers["content-type"].startswith("text/javascript")
    assert helper_app.get("/demo/static/demo.css").headers["content-type"].startswith("text/css")
    for name in ("demo.html", "..%2Fdemo.py", "nope.js"):
        assert helper_app.get(f"/demo/static/{name}").status_code == 404
    assert helper_app.get("/demo/static/../demo.py").status_code == 404


def test_customers_whose_latest_order_has_the_category(helper_app) -> None:  # type: ignore[no-untyped-def]
    body = helper_app.get("/demo/customers?category=trousers&limit=20").json()
    rows = body["customers"]
    assert len(rows) == 20 and body["model_version"] == "crosssell:t1"
    dates = [r["last_purchase"] for r in rows]
    assert dates == sorted(dates, reverse=True)
    bundle = helper_app.bundle
    trousers = _trousers_ids(bundle)
    h = bundle.hybrid.history.frame
    for r in rows:  # brute force per customer, independent of the helper's group-by
        assert _latest_order_items(bundle, r["customer_id"]) & trousers
        mine = h.filter(pl.col("customer_id") == r["customer_id"])
        assert r["last_purchase"] == mine["ts"].max().date().isoformat()  # type: ignore[union-attr]
        assert r["lines"] == mine.height and r["orders"] == mine["order_id"].n_unique()
    # Nobody more recent was left out.
    latest = h.group_by("customer_id").agg(pl.col("ts").max())
    newer = latest.filter(pl.col("ts").dt.date() > pl.lit(dates[-1]).str.to_date())["customer_id"].to_list()
    listed = {r["customer_id"] for r in rows}
    missed = [c for c in newer if _latest_order_items(bundle, c) & trousers and c not in listed]
    assert missed == []
    assert helper_app.get("/demo/customers?category=no-such").json()["customers"] == []
    r = helper_app.get("/demo/customers?limit=0")
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["query", "limit"]


def test_history_newest_first_with_names_and_categories(helper_app) -> None:  # type: ignore[no-untyped-def]
    online = helper_app.online
    cid = "C000010"
    body = helper_app.get(f"/demo/customers/{cid}/history").json()
    mine = helper_app.bundle.hybrid.history.frame.filter(pl.col("customer_id") == cid)
    assert body["known"] is True and body["total_lines"] == mine.height
    assert len(body["purchases"]) == min(mine.height, 50)
    ts = [p["ts"] for p in body["purchases"]]
    assert ts == sorted(ts, reverse=True)
    for p in body["purchases"]:
        assert p["name"] == online.item_name[p["item_id"]]
        assert p["category"] == online.item_category[p["item_id"]]
        assert p["date"] == p["ts"][:10]
    assert body["cart"] == []
    online.carts["C000010"] = ["I00050"]
    try:
        assert helper_app.get(f"/demo/customers/{cid}/history").json()["cart"] == ["I00050"]
    finally:
        online.carts.pop("C000010", None)
    unknown = helper_app.get("/demo/customers/nobody-here/history").json()
    assert unknown["known"] is False and unknown["purchases"] == [] and unknown["total_lines"] == 0
    bad = helper_app.get("/demo/customers/bad%20id/history")
    assert bad.status_code == 400 and "customer_id" in bad.json()["detail"][0]["loc"]


def test_items_search_lookup_and_bestsellers(helper_app) -> None:  # type: ignore[no-untyped-def]
    online = helper_app.online
    found = helper_app.get("/demo/items?q=BELT&limit=50").json()["items"]
    assert found and all("belt" in (i["name"] + i["category"] + i["item_id"]).lower() for i in found)
    n_belts = sum("belt" in (str(name) + str(online.item_category[i])).lower()
                  for i, name in online.item_name.items())
    assert len(found) == min(50, n_belts)
    ids = ["I00050", "I00013", "NO-SUCH"]
    looked = helper_app.get("/demo/items?ids=" + ",".join(ids)).json()["items"]
    assert [i["item_id"] for i in looked] == ["I00050", "I00013"]
    assert looked[0]["price"] == pytest.approx(online.item_price["I00050"])
    best = helper_app.get("/demo/items?limit=5").json()["items"]
    assert [i["item_id"] for i in best] == online.popular_frame["item_id"].head(5).to_list()
    assert helper_app.get("/demo/items?ids=a,bad id").status_code == 400
    assert helper_app.get("/demo/items?q=" + "x" * 101).status_code == 400


# ---------------------------------------------------------------------------------------------------------
# The page in a real browser against a real service process
# ---------------------------------------------------------------------------------------------------------
def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:  # not listening yet
        return 0, ""


@pytest.fixture(scope="module")
def server(synthetic_bundle_dir: Path,  # type: ignore[no-untyped-def]
           tmp_path_factory: pytest.TempPathFactory, bentoml_process):
    _skip_without_browser()
    from recsys.registry import Registry

    bundle = Bundle.load(synthetic_bundle_dir)
    tag = Registry().save(bundle.write_into, metadata={"headline": {"all.map": 0.1}}, version="demo-page-v1")
    work = tmp_path_factory.mktemp("demo-server")
    store_uri = f"sqlite:///{work / 'state.db'}"
    env = dict(os.environ, RECSYS_MODEL=tag, RECSYS_STORE_URI=store_uri, RECSYS_API_KEY=KEY,
               RECSYS_PUBLIC_KEY=PUBLIC_KEY, RECSYS_DEMO="1",
               RECSYS_WORKERS="1", RECSYS_WATCH_SECONDS="1", BENTOML_DO_NOT_TRACK="True",
               OPENBLAS_NUM_THREADS="1")
    url = bentoml_process(work, env)
    status, page = _get(f"{url}/demo")
    assert KEY not in page and PUBLIC_KEY in page  # only the public key reaches the browser
    if status == 404:
        pytest.fail("GET /demo is 404 with RECSYS_DEMO=1: serving/service.py must mount the demo routes "
                    "(extra.routes.extend(demo_routes(lambda: _state)))")
    return SimpleNamespace(url=url, bundle=bundle, store_uri=store_uri, tag=tag)


@pytest.fixture(scope="module")
def browser(server, chromium):  # type: ignore[no-untyped-def]
    driver = chromium(window="1280,900")
    # Reduced motion: the page's "fresh card" highlight is off, so screenshots show the settled page.
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]})
    return driver


def _wait(driver: Any, condition: Any, what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        status = driver.execute_script("return document.getElementById('status')?.textContent")
        pytest.fail(f"page never showed: {what} (status line: {status!r})")


def _cards(driver: Any, list_id: str) -> list[dict[str, str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' .card')].map(c => ({item: c.dataset.itemId, "
        "category: c.dataset.category, type: c.dataset.reasonType, source: c.dataset.sourceItemId, "
        "reason: (c.querySelector('.reason')?.firstChild?.textContent || '')}))", f"#{list_id}")


def _idle(driver: Any) -> bool:
    return bool(driver.execute_script("return document.body.dataset.ready === 'true' && "
                                      "![...document.querySelectorAll('[aria-busy=true]')].length"))


def _screenshot(driver: Any, *paths: Path) -> None:
    """The whole page (beyond the viewport), as PNG, to every path."""
    driver.execute_script("window.scrollTo(0, 0)")
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    data = base64.b64decode(shot["data"])
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_trousers_buyer_sees_complements_and_the_cart_updates_live(  # type: ignore[no-untyped-def]
        server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from recsys.store import Store

    d = browser
    d.get(f"{server.url}/demo")
    _wait(d, _idle, "the first render")
    assert d.find_element(By.ID, "model-version").text == server.tag

    # Pick a customer whose latest order has trousers (the page's sample list, checked against the bundle).
    Select(d.find_element(By.ID, "category")).select_by_value("trousers")
    _wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#customer option")) > 1,
          "sample trousers buyers")
    customer = Select(d.find_element(By.ID, "customer"))
    customer.select_by_index(1)
    cid = customer.first_selected_option.get_attribute("value")
    trousers = _trousers_ids(server.bundle)
    assert _latest_order_items(server.bundle, cid) & trousers, cid

    # History: by date, with category chips; the trousers are there.
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#history-list .history-line"),
          "the purchase history")
    lines = d.execute_script("return [...document.querySelectorAll('#history-list .history-line')].map(l => "
                             "({item: l.dataset.itemId, category: l.dataset.category, "
                             "name: l.querySelector('button').textContent}))")
    bought_trousers = {ln["item"]: ln["name"] for ln in lines if ln["category"] == "trousers"}
    assert bought_trousers and set(bought_trousers) <= trousers
    assert d.find_elements(By.CSS_SELECTOR, "#history-list time[datetime]")

    # "For you": belts or shoes, with a reason that names the trousers and the day they were bought.
    _wait(d, lambda d: _idle(d) and _cards(d, "for-you-list"), "the for-you widget")
    cards = _cards(d, "for-you-list")
    complements = [c for c in cards if c["category"] in ("belts", "shoes") and c["source"] in bought_trousers]
    assert complements, cards
    first = complements[0]
    assert first["reason"].startswith("Because you bought ")
    assert bought_trousers[first["source"]] in first["reason"], first
    assert re.search(r" on \d{4}-\d{2}-\d{2}$", first["reason"]), first

    # Add it to the cart: a cart event is stored and the cart complements appear.
    card = d.find_element(By.CSS_SELECTOR, f'#for-you-list .card[data-item-id="{first["item"]}"]')
    card.find_element(By.CSS_SELECTOR, ".add-to-cart").click()
    _wait(d, lambda d: "cart event stored" in d.find_element(By.ID, "status").text, "the stored cart event")
    _wait(d, lambda d: _idle(d) and _cards(d, "cart-recs"), "cart complements")
    before = [c["item"] for c in _cards(d, "cart-recs")]
    assert d.find_element(By.ID, "cart-count").text == "1"

    # Open a shirt on the product page ("goes well with"), add it: the cart complements change.
    search = d.find_element(By.ID, "search-q")
    search.send_keys("shirts")
    d.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, '#search-results button[data-category="shirts"]'),
          "shirts in the search results")
    pick = d.find_element(By.CSS_SELECTOR, '#search-results button[data-category="shirts"]')
    shirt = pick.get_attribute("data-item-id")
    pick.click()
    _wait(d, lambda d: d.find_element(By.ID, "product-name").get_attribute("data-item-id") == shirt,
          "the shirt's product page")
    _wait(d, lambda d: _idle(d) and _cards(d, "goes-well-list"), "goes-well-with for the shirt")
    goes_well = _cards(d, "goes-well-list")
    assert shirt not in {c["item"] for c in goes_well}
    assert any(c["category"] != "shirts" for c in goes_well)
    d.find_element(By.ID, "product-add").click()
    _wait(d, lambda d: d.find_element(By.ID, "cart-count").text == "2", "two items in the cart")
    _wait(d, lambda d: _idle(d) and [c["item"] for c in _cards(d, "cart-recs")] != before,
          "the cart complements to change")
    after = [c["item"] for c in _cards(d, "cart-recs")]
    assert after and after != before
    assert not {first["item"], shirt} & set(after)  # never what is already in the cart

    # The service stored both cart events for this customer (the page sent the public key).
    events = Store(server.store_uri).events([cid]).filter(pl.col("event") == "cart")
    assert sorted(events["item_id"].to_list()) == sorted([first["item"], shirt])

    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    _screenshot(d, tmp_path / "demo-desktop.png", ARTEFACTS / "demo-screenshot.png")


def test_phone_width_no_sideways_scroll_labelled_controls(  # type: ignore[no-untyped-def]
        server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    cid = "C000010"
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 375, "height": 740, "deviceScaleFactor": 1, "mobile": True})
    try:
        d.get(f"{server.url}/demo?customer={cid}")
        _wait(d, lambda d: _idle(d) and _cards(d, "for-you-list")
              and d.find_elements(By.CSS_SELECTOR, "#history-list .history-line"), "the page at 375 px")
        assert d.execute_script("return window.innerWidth") == 375
        assert d.execute_script("return document.documentElement.scrollWidth") <= 375
        unlabelled = d.execute_script(
            "return [...document.querySelectorAll('input, select')]"
            ".filter(e => !e.labels.length).map(e => e.id)")
        assert unlabelled == []
        unnamed = d.execute_script(
            "return [...document.querySelectorAll('button')].filter(b => !(b.getAttribute('aria-label') "
            "|| b.textContent.trim())).length")
        assert unnamed == 0
        assert d.find_element(By.ID, "for-you-list").get_attribute("aria-live") == "polite"
        assert d.find_element(By.ID, "customer").get_attribute("value") == cid  # the deep link chose them
        _screenshot(d, tmp_path / "demo-phone.png", ARTEFACTS / "demo-screenshot-phone.png")
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

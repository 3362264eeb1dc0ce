"""The marketer's dashboard: its JSON endpoints in-process, and the page in headless Chromium.

The store is seeded as a shop would fill it: a plain campaign run (trousers → belts and shoes) and a
campaign with arms (welcome vs new-in-category plus a holdout), both logged, purchases after the sends,
and a service A/B experiment with exposures and attributed events.  The JSON endpoints are checked for
their key rule (401 without a key, 403 with the public key), their shapes and their values against the
library functions they stand for; the page is checked in a real ``bentoml serve`` process and Debian's
chromium: sign in with the admin key, every panel renders data and charts, no console errors.
Screenshots go to the test's tmp dir and ``bench/results/`` (git-ignored); ``RECSYS_DOCS_SCREENSHOTS=1``
also writes ``docs/dashboard*.png`` (the README's pictures).
"""

from __future__ import annotations

import base64
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recsys.bundle import Bundle
from recsys.campaigns import campaign_from_dict, default_now, load_campaign, plan_campaign, run_campaign
from recsys.data.synthetic import generate_shop
from recsys.dataset import Dataset
from recsys.experiments import ExperimentLog, assign_arms, read_experiment
from recsys.rules import load_placements
from recsys.segments import lifecycle, segments, summarize
from recsys.store import Store

ROOT = Path(__file__).resolve().parents[2]
PLACEMENTS = load_placements(ROOT / "configs" / "placements.yaml")
ADMIN = "dashboard-admin-key"
PUBLIC = "dashboard-public-key"
VERSION = "crosssell:dash-v1"
PANELS = ("overview", "segments", "lifecycle", "campaigns", "kpis", "experiments", "complements")
WAIT = 60.0
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")


def _skip_without_browser() -> None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run does as root)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (part of the test extra)")


def _arms_campaign() -> Any:
    return campaign_from_dict({
        "name": "welcome_arms", "description": "Welcome picks: two strategies and a holdout.",
        "audience": {"all_customers": True}, "strategy": "welcome", "n_picks": 3, "frequency_cap": None,
        "resend_window_days": None, "holdout_share": 0.1,
        "experiment": {"name": "welcome-vs-new", "arms": [
            {"name": "welcome"}, {"name": "new", "strategy": {"kind": "new_in_category", "new_within_days": 120}}]},
    }, source="welcome_arms.yaml")


def seed_store(store: Store, bundle: Bundle, data: Dataset) -> None:
    """Two logged campaign runs with purchases after them, and a service experiment with outcomes."""
    now = default_now(data)
    trousers = load_campaign(ROOT / "configs" / "campaigns" / "trousers_to_belts_shoes.yaml")
    for campaign in (trousers, _arms_campaign()):
        run_campaign(campaign, bundle, data, placements=PLACEMENTS, store=store, now=now, run_id=f"{campaign.name}-1",
                     model_version=VERSION)
    sends = store.sends().group_by("customer_id").agg(pl.col("sent_at").min(), pl.col("item_id").first())
    rng = np.random.default_rng(0)
    buyers = sends.filter(pl.Series(rng.random(sends.height) < 0.3))
    store.add_events(buyers.select(
        "customer_id", "item_id", pl.lit("purchase").alias("event"), (pl.col("sent_at") + timedelta(days=2)).alias("ts"),
        pl.lit(1.0).alias("quantity"), pl.lit(30.0).alias("price"),
        pl.concat_str([pl.lit("o-"), pl.col("customer_id")]).alias("order_id"),
        pl.lit("trousers_to_belts_shoes").alias("source")))
    # a service A/B: 800 customers over two days, the challenger converting a little more often
    log = ExperimentLog(store)
    log.register("ranker-ab", kind="service", config={"control_model": VERSION, "challenger_model": "crosssell:dash-v2",
                                                      "share": 0.5, "attribution_hours": 24, "primary_metric": "conversion"})
    t0 = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=2)
    ids = [f"C{i:06d}" for i in range(1, 801)]
    events = []
    for k, (cid, arm) in enumerate(zip(ids, assign_arms(ids, [("control", .5), ("challenger", .5)], salt="ranker-ab"),
                                       strict=True)):
        items = [f"I{(k * 7 + j) % 600 + 1:05d}" for j in range(4)]
        shown = t0 + timedelta(days=k % 2)
        log.log_exposure(experiment="ranker-ab", rec_id=f"r{k}", arm=arm,
                         model_version="crosssell:dash-v2" if arm == "challenger" else VERSION, customer_id=cid,
                         session_id=None, subject=cid, placement="for_you", item_ids=items, shown_at=shown)
        events.append({"customer_id": cid, "item_id": items[0], "event": "impression"})
        if rng.random() < (0.25 if arm == "challenger" else 0.18):
            events.append({"customer_id": cid, "item_id": items[0], "event": "click"})
            events.append({"customer_id": cid, "item_id": items[0], "event": "purchase", "price": 40.0,
                           "order_id": f"x{k}"})
    frame = pl.DataFrame(events, schema={"customer_id": pl.String, "item_id": pl.String, "event": pl.String,
                                         "price": pl.Float64, "order_id": pl.String})
    frame = frame.with_columns(pl.lit(1.0).alias("quantity"), pl.lit(None, pl.Datetime("us")).alias("ts"))
    log.attribute(frame, window=timedelta(hours=48), received_at=t0 + timedelta(hours=30))


# ---------------------------------------------------------------------------------------------------------
# The JSON endpoints, in-process
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shop() -> Dataset:
    return generate_shop(seed=0).dataset


@pytest.fixture(scope="module")
def api(synthetic_bundle_dir: Path, shop: Dataset, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from recsys.dashboard import Dashboard
    from recsys.online import OnlineRecommender
    from serving.dashboard import dashboard_routes

    bundle = Bundle.load(synthetic_bundle_dir)
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('dash') / 'state.db'}")
    seed_store(store, Bundle.load(synthetic_bundle_dir), shop)
    online = OnlineRecommender(bundle, PLACEMENTS, version=VERSION)
    state = SimpleNamespace(online=online, store=store, placements=PLACEMENTS,
                            settings=SimpleNamespace(api_key=ADMIN, public_key=PUBLIC))
    board = Dashboard(campaigns=sorted((ROOT / "configs" / "campaigns").glob("*.yaml")) + [_arms_campaign()],
                      overrides=ROOT / "configs" / "complements_overrides.yaml", data=lambda: shop)
    app = Starlette(routes=dashboard_routes(lambda: state, board=board))
    with TestClient(app) as client:
        client.headers["x-api-key"] = ADMIN
        yield SimpleNamespace(client=client, bundle=bundle, store=store, shop=shop, online=online)


@pytest.mark.parametrize("panel", PANELS)
def test_every_panel_needs_the_admin_key(api, panel: str) -> None:  # type: ignore[no-untyped-def]
    c = api.client
    r = c.get(f"/dashboard/api/{panel}", headers={"x-api-key": ""})
    assert r.status_code == 401 and r.json()["detail"][0]["loc"] == ["header", "x-api-key"]
    assert "www-authenticate" in r.headers and "customers" not in r.text
    r = c.get(f"/dashboard/api/{panel}", headers={"x-api-key": PUBLIC})
    assert r.status_code == 403 and "admin" in r.json()["error"]
    r = c.get(f"/dashboard/api/{panel}")
    assert r.status_code == 200 and r.json()["panel"] == panel and r.json()["model_version"] == VERSION
    assert r.headers["cache-control"] == "no-store"


def test_page_and_assets_hold_no_key_or_data(api) -> None:  # type: ignore[no-untyped-def]
    c = api.client
    r = c.get("/dashboard", headers={"x-api-key": ""})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert ADMIN not in r.text and PUBLIC not in r.text and "C000" not in r.text
    assert "/dashboard/static/chart.umd.min.js" in r.text  # the charting library is served, not fetched from a CDN
    assert "http://" not in r.text and "https://" not in r.text
    js = c.get("/dashboard/static/chart.umd.min.js")
    assert js.status_code == 200 and js.text.startswith("/*!\n * Chart.js v4.")
    assert (ROOT / "serving" / "static" / "chart.js-LICENSE.md").read_text().startswith("The MIT License")
    for name in ("dashboard.js", "dashboard.css"):
        assert c.get(f"/dashboard/static/{name}").status_code == 200
    for name in ("dashboard.html", "chart.js-LICENSE.md", "..%2Fdashboard.py", "demo.js"):
        assert c.get(f"/dashboard/static/{name}").status_code == 404
    r = c.get("/dashboard/api/nope")
    assert r.status_code == 404 and r.json()["detail"][0]["loc"] == ["path", "panel"]


def test_overview_names_the_data_and_the_consent_source(api) -> None:  # type: ignore[no-untyped-def]
    d = api.client.get("/dashboard/api/overview").json()
    assert d["from_dataset"] is True and d["data_source"].startswith("synthetic")
    assert d["customers"] == api.shop.purchases["customer_id"].n_unique() and d["purchases"] == api.shop.purchases.height


def test_segments_are_the_segment_tables_numbers(api) -> None:  # type: ignore[no-untyped-def]
    d = api.client.get("/dashboard/api/segments").json()
    table = segments(api.shop)
    want = summarize(table, "value_segment")
    assert [r["segment"] for r in d["value_segments"]] == want["value_segment"].to_list()
    assert [r["customers"] for r in d["value_segments"]] == want["customers"].to_list()
    assert [r["revenue"] for r in d["value_segments"]] == pytest.approx(want["revenue"].to_list())
    assert d["customers"] == table.height == sum(r["customers"] for r in d["lifecycle"])
    assert sum(r["revenue_share"] for r in d["value_segments"]) == pytest.approx(1.0)
    top = d["value_segments"][0]
    assert top["segment"] == "most_valuable" and top["revenue_share"] > top["customer_share"]


def test_lifecycle_flow_adds_up(api) -> None:  # type: ignore[no-untyped-def]
    d = api.client.get("/dashboard/api/lifecycle").json()
    now = lifecycle(api.shop)
    assert sum(t["customers"] for t in d["transitions"]) == now.height
    counts = dict(now.group_by("lifecycle").len().iter_rows())
    for c in d["counts"]:
        assert c["now"] == counts.get(c["stage"], 0)
        assert c["now"] == sum(t["customers"] for t in d["transitions"] if t["to"] == c["stage"])
    before = datetime.fromisoformat(d["before"])
    assert datetime.fromisoformat(d["now"]) - before == timedelta(days=30)
    assert sum(c["before"] for c in d["counts"]) == lifecycle(api.shop, now=before).height
    newcomers = [t for t in d["transitions"] if t["from"] == "not_yet_customer"]
    assert newcomers and all(t["to"] == "new" for t in newcomers)  # a first purchase within 30 days is "new"


def test_campaigns_count_the_audience_and_consent_and_preview_picks(api) -> None:  # type: ignore[no-untyped-def]
    d = api.client.get("/dashboard/api/campaigns").json()
    by = {c["name"]: c for c in d["campaigns"]}
    assert "SOFT DRINKS" in by["cj_complements_top_category"]["error"]  # the Complete Journey config: named, not dropped
    t = by["trousers_to_belts_shoes"]
    plan = plan_campaign(load_campaign(ROOT / "configs" / "campaigns" / "trousers_to_belts_shoes.yaml"), api.bundle,
                         api.shop, placements=PLACEMENTS, store=api.store, now=default_now(api.shop),
                         run_id="trousers_to_belts_shoes-dashboard-preview")
    assert t["audience"] == plan.summary["audience"] > 0
    assert t["excluded"]["consent"] == plan.summary["excluded"]["consent"] > 0
    assert t["recipients"] == plan.summary["recipients"]
    assert t["audience"] == t["recipients"] + sum(t["excluded"].values())
    first = t["preview"][0]
    assert first["picks"] and all(p["reason_text"] and p["name"] for p in first["picks"])
    assert {api.online.item_category[p["item_id"]] for p in first["picks"]} <= {"belts", "shoes"}
    arms = by["welcome_arms"]
    assert arms["experiment"] == "welcome-vs-new" and {a["arm"] for a in arms["arms"]} == {"welcome", "new", "holdout"}
    assert api.store.count("send_log") == api.store.sends().height  # planning wrote nothing: only the seeded runs


def test_kpi_trends_per_campaign_arm_and_model_version(api) -> None:  # type: ignore[no-untyped-def]
    d = api.client.get("/dashboard/api/kpis").json()
    keys = {(s["kind"], s["campaign"], s["arm"], s["model_version"]) for s in d["series"]}
    assert {("campaign", "welcome_arms", a, VERSION) for a in ("welcome", "new", "holdout")} <= keys
    assert {("campaign", "trousers_to_belts_shoes", a, VERSION) for a in ("emailed", "holdout")} <= keys
    assert ("service", "ranker-ab", "challenger", "crosssell:dash-v2") in keys
    assigned = ExperimentLog(api.store).assignments("welcome-vs-new")
    sent = set(api.store.sends().filter(pl.col("campaign") == "welcome_arms")["customer_id"].to_list())
    for s in d["series"]:
        if s["campaign"] == "welcome_arms":  # units: the customers of the send log in that arm
            want = assigned.filter((pl.col("arm") == s["arm"]) & pl.col("customer_id").is_in(list(sent))).height
            assert sum(p["customers"] for p in s["points"]) == want
        for p in s["points"]:
            assert 0 <= p["conversion"] <= 1 and p["converted"] <= p["customers"]
    service = [s for s in d["series"] if s["kind"] == "service"]
    assert sum(len(s["points"]) for s in service) == 4  # two arms × two days
    assert sum(p["customers"] for s in service for p in s["points"]) == 800
    emailed = next(s for s in d["series"] if s["campaign"] == "trousers_to_belts_shoes" and s["arm"] == "emailed")
    assert emailed["points"][0]["converted"] > 0 and emailed["points"][0]["revenue"] > 0


def test_experiments_are_the_kpis_experiment_readout(api) -> None:  # type: ignore[no-untyped-def]
    d = api.client.get("/dashboard/api/experiments").json()
    by = {x["name"]: x for x in d["experiments"]}
    assert set(by) == {"ranker-ab", "welcome-vs-new"}
    assert d["tests"]["conversion"].startswith("two-proportion z-test")
    x = by["ranker-ab"]
    want = read_experiment(api.store, "ranker-ab").readout
    assert x["control"] == "control" and x["primary_metric"] == "conversion"
    cols = ["arm", "metric", "customers", "value", "low", "high", "diff", "diff_low", "diff_high", "p_value", "verdict"]
    got = pl.DataFrame(x["rows"], infer_schema_length=None).select(cols)
    assert_frame_equal(got, want.table.select(cols), check_dtypes=False)
    row = next(r for r in x["rows"] if r["arm"] == "challenger" and r["metric"] == "conversion")
    assert row["low"] <= row["value"] <= row["high"] and row["diff_low"] <= row["diff"] <= row["diff_high"]
    assert [dc["arm"] for dc in x["decisions"]] == ["challenger"]
    assert x["decisions"][0]["reason"] == want.decide("challenger").reason
    assert {"holdout", "welcome", "new"} == set(by["welcome-vs-new"]["arms"])


def test_complement_map_with_its_overrides(api) -> None:  # type: ignore[no-untyped-def]
    d = api.client.get("/dashboard/api/complements").json()
    graph = api.bundle.hybrid.generators["category_complements"].graph_frame()
    top = graph.filter(pl.col("rank") <= 5)
    assert d["available"] and len(d["edges"]) == top.height
    assert {(e["source"], e["target"]) for e in d["edges"]} == set(top.select("source", "target").iter_rows())
    trousers = [e["target"] for e in sorted(d["edges"], key=lambda e: e["rank"]) if e["source"] == "trousers"]
    assert set(trousers[:2]) == {"belts", "shoes"}  # the synthetic shop's planted complements
    ov = {(o["source"], o["action"], o["target"]): o for o in d["overrides"]}
    assert set(ov) == {("trousers", "pin", "belts"), ("trousers", "add", "socks"), ("trousers", "remove", "jeans"),
                       ("shirts", "pin", "ties"), ("dresses", "remove", "skirts")}
    edges = set(graph.select("source", "target").iter_rows())
    # this bundle was trained without the file: "in effect" is what the served graph does, not what the file says
    assert ov[("trousers", "remove", "jeans")]["in_effect"] is (("trousers", "jeans") not in edges)
    assert ov[("dresses", "remove", "skirts")]["in_effect"] is (("dresses", "skirts") not in edges)
    assert ov[("trousers", "pin", "belts")]["in_effect"] is False and ov[("trousers", "add", "socks")]["lift"] == 1.5


def test_the_package_ships_the_page_and_the_chart_library() -> None:
    import tomllib

    import yaml

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["serving"]
    static = ROOT / "serving" / "static"
    for name in ("dashboard.html", "dashboard.js", "dashboard.css", "chart.umd.min.js", "chart.js-LICENSE.md"):
        assert any((static / name).relative_to(ROOT / "serving").match(glob) for glob in data), name
    assert "/serving/" in yaml.safe_load((ROOT / "bentofile.yaml").read_text())["include"]


# ---------------------------------------------------------------------------------------------------------
# The page in a real browser against a real service process
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(synthetic_bundle_dir: Path, shop: Dataset, tmp_path_factory: pytest.TempPathFactory,  # type: ignore[no-untyped-def]
           bentoml_process):
    _skip_without_browser()
    from recsys.registry import Registry

    bundle = Bundle.load(synthetic_bundle_dir)
    tag = Registry().save(bundle.write_into, metadata={"headline": {"all.map": 0.1}}, version="dashboard-v1")
    work = tmp_path_factory.mktemp("dashboard-server")
    store_uri = f"sqlite:///{work / 'state.db'}"
    seed_store(Store(store_uri), Bundle.load(synthetic_bundle_dir), shop)
    env = dict(os.environ, RECSYS_MODEL=tag, RECSYS_STORE_URI=store_uri, RECSYS_API_KEY=ADMIN,
               RECSYS_PUBLIC_KEY=PUBLIC, RECSYS_DASHBOARD_DATASET="synthetic", RECSYS_WORKERS="1",
               RECSYS_WATCH_SECONDS="1", BENTOML_DO_NOT_TRACK="True", OPENBLAS_NUM_THREADS="1")
    return SimpleNamespace(url=bentoml_process(work, env), tag=tag, log=work / "server.log")


@pytest.fixture(scope="module")
def browser(server, chromium):  # type: ignore[no-untyped-def]
    return chromium(window="1400,1000", extra=("--hide-scrollbars",))


def _small_png(data: bytes, path: Path, colors: int = 64) -> None:
    """A palette PNG (a few dozen colours are plenty for charts and text): ~5x smaller than the capture."""
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    img.save(path, optimize=True)


def _screenshot(driver: Any, path: Path, *, element: str | None = None, height: float | None = None) -> bytes:
    """The whole page (or one element; at most ``height`` CSS pixels of it), as PNG."""
    driver.execute_script("window.scrollTo(0, 0)")
    if element:
        rect = driver.execute_script("const r = document.querySelector(arguments[0]).getBoundingClientRect();"
                                     "return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}",
                                     element)
    else:
        rect = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        rect = {"x": 0, "y": 0, "width": rect["width"], "height": rect["height"]}
    if height is not None:
        rect["height"] = min(rect["height"], height)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True, "clip": {**rect, "scale": 1}})
    data = base64.b64decode(shot["data"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


@pytest.mark.integration
def test_dashboard_page_signs_in_and_every_panel_renders(server, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    d.get(f"{server.url}/dashboard")
    assert d.find_element(By.ID, "login-panel").is_displayed()
    assert not d.find_element(By.ID, "board").is_displayed()
    d.find_element(By.ID, "api-key").send_keys(ADMIN)
    d.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    try:
        WebDriverWait(d, WAIT, poll_frequency=0.2).until(
            lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    except TimeoutException:
        pytest.fail(f"the dashboard never finished loading: {d.find_element(By.ID, 'status').text!r}\n"
                    + server.log.read_text()[-3000:])
    states = d.execute_script("return Object.fromEntries([...document.querySelectorAll('section[id^=panel-]')]"
                              ".map(s => [s.id, [s.dataset.state, Number(s.dataset.items)]]))")
    assert states.pop("login-panel", None) is None
    assert set(states) == {f"panel-{p}" for p in PANELS if p != "overview"}
    for panel, (state, items) in states.items():
        assert state == "ready" and items > 0, (panel, state, items)
    assert d.find_element(By.ID, "model-version").text == server.tag
    # every canvas holds a Chart.js chart with data points
    charts = d.execute_script(
        "return [...document.querySelectorAll('canvas')].map(c => { const ch = Chart.getChart(c);"
        " return [c.id, ch ? ch.data.datasets.reduce((a, ds) => a + ds.data.filter(v => v != null).length, 0) : -1]; })")
    ids = {c for c, _ in charts}
    assert {"chart-segments", "chart-lifecycle", "chart-campaigns", "chart-kpis-conversion", "chart-kpis-revenue",
            "chart-complements"} <= ids and any(c.startswith("chart-exp-") for c in ids)
    assert all(n > 0 for _, n in charts), charts
    # campaigns: consent exclusions and a preview with reasons; experiments: intervals and a decision
    consent = d.execute_script("return [...document.querySelectorAll('#campaign-cards .counts')].map(e => e.textContent)")
    assert any("left out for consent" in t for t in consent)
    reasons = d.find_elements(By.CSS_SELECTOR, '[data-campaign="trousers_to_belts_shoes"] .preview em')
    assert reasons and reasons[0].text.startswith("Because you bought ")
    assert d.find_elements(By.CSS_SELECTOR, '[data-experiment="ranker-ab"] [data-wins]')
    assert "95 % CI" in d.find_element(By.ID, "exp-table-0").text
    assert "pin" in d.find_element(By.ID, "overrides-table").text
    # the key lives in this tab's sessionStorage, nowhere in the page
    assert d.execute_script("return sessionStorage.getItem('crosssell.dashboard.adminKey')") == ADMIN
    assert ADMIN not in d.page_source
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    artefacts = ROOT / "bench" / "results"
    full = _screenshot(d, tmp_path / "dashboard.png")
    (artefacts / "dashboard.png").parent.mkdir(parents=True, exist_ok=True)
    (artefacts / "dashboard.png").write_bytes(full)
    if os.environ.get("RECSYS_DOCS_SCREENSHOTS") == "1":  # the README's pictures: the top of the page and two panels
        for name, element in (("dashboard", None), ("dashboard-experiments", "#panel-experiments"),
                              ("dashboard-complements", "#panel-complements")):
            _small_png(_screenshot(d, tmp_path / f"{name}-full.png", element=element, height=1100),
                       ROOT / "docs" / f"{name}.png")
    # signing out forgets the key
    d.find_element(By.ID, "sign-out").click()
    assert d.execute_script("return sessionStorage.getItem('crosssell.dashboard.adminKey')") is None
    assert d.find_element(By.ID, "login-panel").is_displayed()


def test_complement_panel_reads_the_overrides_the_model_was_trained_with(tmp_path: Path) -> None:
    """The map shown is the one in effect: the served model's own overrides file wins over the
    dashboard's configured one (which may be another file, or none)."""
    from types import SimpleNamespace

    from recsys.dashboard import Dashboard

    trained = tmp_path / "trained_overrides.yaml"
    trained.write_text((ROOT / "configs" / "complements_overrides.yaml").read_text())
    board = Dashboard(overrides=None)
    assert board._overrides(SimpleNamespace(overrides=str(trained)))[1] == str(trained)
    assert board._overrides(SimpleNamespace(overrides=str(tmp_path / "gone.yaml"))) == (None, None)
    assert board._overrides(None) == (None, None)

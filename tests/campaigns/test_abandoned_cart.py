"""The abandoned-cart campaign on the synthetic shop with carts planted in a real SQLite store: carts
found and not found by the rules (bought since, too fresh, too old, still filling, out of stock), the
cart first then complements, consent/suppression/frequency cap as for every campaign, beside welcome,
win-back and replenishment; and not-interested feedback kept out of every campaign's picks."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from recsys.bundle import Bundle
from recsys.campaigns import campaign_from_dict, default_now, load_campaign, plan_campaign, run_campaigns
from recsys.campaigns._abandoned import abandoned_carts
from recsys.data.synthetic import generate_shop
from recsys.dataset import Dataset
from recsys.rules import load_placements
from recsys.store import Store

ROOT = Path(__file__).resolve().parents[2]
PLACEMENTS = load_placements(ROOT / "configs" / "placements.yaml")
CAMPAIGNS = ROOT / "configs" / "campaigns"


@pytest.fixture(scope="module")
def shop() -> Dataset:
    data = generate_shop(seed=0).dataset
    items = data.items.with_columns(  # one item out of stock, to plant a cart that must not be mailed
        pl.when(pl.col("item_id") == "I00007").then(False).otherwise(pl.col("in_stock").fill_null(True))
        .alias("in_stock"))
    return Dataset(data.interactions, items, data.customers, source=data.source,
                   consent_default=True)


@pytest.fixture(scope="module")
def now(shop: Dataset) -> datetime:
    return default_now(shop)


@pytest.fixture()
def bundle(synthetic_bundle_dir: Path) -> Bundle:
    return Bundle.load(synthetic_bundle_dir)


def _never_bought(shop: Dataset, cid: str, k: int) -> list[str]:
    bought = set(shop.purchases.filter(pl.col("customer_id") == cid)["item_id"])
    stock = shop.items.filter(pl.col("in_stock") & (pl.col("item_id") != "I00013"))  # (I00013: recalled)
    firsts = stock.group_by("category", maintain_order=True).first()["item_id"].to_list()
    return [i for i in firsts if i not in bought][:k]


def _event(cid: str, item: str, kind: str, ts: datetime, **kw: object) -> dict[str, object]:
    return {"customer_id": cid, "item_id": item, "event": kind, "ts": ts, **kw}


@pytest.fixture()
def planted(tmp_path: Path, shop: Dataset, now: datetime) -> tuple[Store, dict[str, tuple[str, list[str]]]]:
    """A store with carts: name → (customer, cart items)."""
    customers = shop.purchases["customer_id"].unique().sort().to_list()[:10]
    h = timedelta(hours=1)
    names = ("open", "bought", "fresh", "old", "filling", "no_stock", "bought_before", "withdrawn", "capped",
             "suppressed")
    who = dict(zip(names, customers, strict=True))
    carts: dict[str, tuple[str, list[str]]] = {}
    rows = []
    for name, cid in who.items():
        items = _never_bought(shop, cid, 2)
        if name == "no_stock":
            items = ["I00007"]
        at = {"fresh": now - 1 * h, "old": now - timedelta(days=10)}.get(name, now - 6 * h)
        rows += [_event(cid, i, "cart", at - timedelta(minutes=k)) for k, i in enumerate(items)]
        if name == "filling":
            rows.append(_event(cid, items[0], "cart", now - 2 * h))  # put back in two hours ago
        carts[name] = (cid, items)
    cid, items = carts["bought"]
    rows += [_event(cid, i, "purchase", now - 5 * h, price=10.0) for i in items]
    cid, items = carts["bought_before"]
    rows.append(_event(cid, items[0], "purchase", now - timedelta(days=60), price=10.0))
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.add_events(pl.DataFrame(rows).with_columns(pl.col("ts").cast(pl.Datetime("us"))), source="widget:cart")
    store.set_consent({cid: name != "withdrawn" for name, (cid, _) in carts.items()})
    store.suppress([carts["suppressed"][0]], reason="bounced")
    sends = pl.DataFrame({"customer_id": [carts["capped"][0]] * 2, "item_id": ["I00001", "I00002"], "rank": [1, 1]})
    store.log_sends(sends.head(1), run_id="earlier-1", campaign="x", model_version=None)
    store.log_sends(sends.tail(1), run_id="earlier-2", campaign="y", model_version=None)
    yield store, carts
    store.close()


def test_planted_carts_are_found_and_bought_ones_are_not(planted, shop: Dataset, now: datetime) -> None:  # type: ignore[no-untyped-def]
    store, carts = planted
    found = abandoned_carts(shop, store, now=now, min_age_hours=4, max_age_days=7)
    by_customer = {c: set(g["item_id"]) for (c,), g in found.partition_by("customer_id", as_dict=True).items()}
    expect = {n for n in carts if n not in ("bought", "fresh", "old", "filling", "no_stock")}
    assert set(by_customer) == {carts[n][0] for n in expect}
    assert by_customer[carts["open"][0]] == set(carts["open"][1])
    assert by_customer[carts["bought_before"][0]] == set(carts["bought_before"][1])  # bought before, not since
    # the age threshold: the fresh cart (1 h) counts from 0.5 h on; the old one (10 days) within 14 days
    fresh = abandoned_carts(shop, store, now=now, min_age_hours=0.5, max_age_days=7)
    assert carts["fresh"][0] in set(fresh["customer_id"]) and carts["filling"][0] in set(fresh["customer_id"])
    assert carts["old"][0] in set(abandoned_carts(shop, store, now=now, min_age_hours=4, max_age_days=14)["customer_id"])


def test_campaign_mails_cart_items_first_then_complements(planted, shop: Dataset, bundle: Bundle,  # type: ignore[no-untyped-def]
                                                          now: datetime) -> None:
    store, carts = planted
    campaign = load_campaign(CAMPAIGNS / "abandoned_cart.yaml").model_copy(update={"holdout_share": 0.0})
    run = plan_campaign(campaign, bundle, shop, placements=PLACEMENTS, store=store, now=now)
    assert set(run.picks["customer_id"]) == {carts["open"][0], carts["bought_before"][0]}
    excluded = dict(run.excluded.select("customer_id", "reason").iter_rows())
    assert excluded == {carts["withdrawn"][0]: "consent", carts["suppressed"][0]: "suppression",
                        carts["capped"][0]: "frequency_cap"}
    assert run.summary["audience"] == 5  # only customers with an abandoned cart
    cid, items = carts["open"]
    mine = run.picks.filter(pl.col("customer_id") == cid).sort("rank")
    assert mine.height == campaign.n_picks
    assert set(mine["item_id"].head(len(items))) == set(items)
    assert mine["reason"].head(len(items)).to_list() == ["abandoned_cart"] * len(items)
    rest = mine.slice(len(items))
    assert set(rest["reason"]) <= {"bought_with", "complements_category"} and set(rest["source_item_id"]) <= set(items)


def test_welcome_winback_and_replenishment_run_beside_it(planted, shop: Dataset, bundle: Bundle,  # type: ignore[no-untyped-def]
                                                         now: datetime, tmp_path: Path) -> None:
    store, carts = planted
    files = ["welcome_series", "abandoned_cart", "replenishment_reminder", "winback_valuable_at_risk"]
    runs = list(run_campaigns([load_campaign(CAMPAIGNS / f"{f}.yaml") for f in files], bundle, shop,
                              placements=PLACEMENTS, store=store, now=now, out=tmp_path / "{campaign}.parquet"))
    assert [r.campaign.name for r in runs] == files
    assert all(r.picks.height > 0 for r in runs), {r.campaign.name: r.summary["excluded"] for r in runs}


def test_not_interested_items_and_categories_never_reach_the_picks(planted, shop: Dataset, bundle: Bundle,  # type: ignore[no-untyped-def]
                                                                   now: datetime) -> None:
    store, carts = planted
    campaign = campaign_from_dict({"name": "w", "audience": {"all_customers": True}, "strategy": "welcome",
                                   "n_picks": 4, "frequency_cap": None, "resend_window_days": None})
    before = plan_campaign(campaign, bundle, shop, placements=PLACEMENTS, store=store, now=now).picks
    first = before.group_by("customer_id", maintain_order=True).first().head(40)
    cats = dict(shop.items.select("item_id", "category").iter_rows())
    half = first.height // 2
    item_rows = [_event(c, i, "not_interested", now - timedelta(days=3)) for c, i in first.head(half).select(
        "customer_id", "item_id").iter_rows()]
    cat_rows = [{**_event(c, "", "not_interested", now - timedelta(days=3)), "category": cats[i]}
                for c, i in first.tail(first.height - half).select("customer_id", "item_id").iter_rows()]
    store.add_events(pl.DataFrame(item_rows + cat_rows).with_columns(pl.col("ts").cast(pl.Datetime("us"))))
    after = plan_campaign(campaign, bundle, shop, placements=PLACEMENTS, store=store, now=now).picks
    shown = set(after.select("customer_id", "item_id").iter_rows())
    assert not shown & {(r["customer_id"], r["item_id"]) for r in item_rows}
    shown_cats = {(c, cats[i]) for c, i in shown}
    assert not shown_cats & {(r["customer_id"], r["category"]) for r in cat_rows}
    # the period is the campaign's: 2 days → the 3-day-old dismissals no longer hold
    short = campaign.model_copy(update={"not_interested_days": 2.0})
    again = plan_campaign(short, bundle, shop, placements=PLACEMENTS, store=store, now=now).picks
    assert again.sort("customer_id", "rank").equals(before.sort("customer_id", "rank"))

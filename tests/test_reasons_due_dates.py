"""Reasons and due dates everywhere: one wording for web, files and emails; buy-again's predicted next
purchase, on a planted shop with a known answer, in ``recsys recommend``'s file and in the
replenishment campaign's due window."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from recsys.batch import OUTPUT_COLUMNS, recommend_batches
from recsys.bundle import Bundle
from recsys.campaigns import campaign_from_dict, default_now, plan_campaign
from recsys.data.synthetic import generate_shop
from recsys.dataset import Dataset
from recsys.models.buy_again import BuyAgain
from recsys.reasons import item_names, reason_text, with_reason_text
from recsys.rules import load_placements

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 1, 1, 12)


def test_reason_wording_is_the_services_and_frames_match_rows() -> None:
    names = {"A1": "Slim chinos", "S1": None}
    assert reason_text("complements_category", "A1", datetime(2025, 5, 3), names) \
        == "Because you bought Slim chinos (A1) on 2025-05-03"
    assert reason_text("complements_category", "A1", None, names) == "Goes well with Slim chinos (A1)"
    assert reason_text("bought_with", "S1", T0, names) == "Often bought with S1"  # no name: the id
    assert reason_text("buy_again", "A1", None, names) == "Buy again: you bought Slim chinos (A1)"
    assert reason_text("buy_again", None, T0, names) is None  # a sourced reason without its source
    assert reason_text("popular", None, None, {}) == "Popular right now"
    assert reason_text("no_such_reason", "A1", T0, names) is None
    frame = pl.DataFrame({
        "reason_type": ["buy_again", "popular", "buy_again", None, "replenish_due"],
        "source_item_id": ["A1", None, "A1", None, "S1"],
        "source_ts": [T0, None, T0 + timedelta(hours=3), None, None],
    })
    out = with_reason_text(frame, names)
    assert out["reason_text"].to_list() == [reason_text(r, s, t, names) for r, s, t in frame.iter_rows()]
    assert out["reason_text"][4] == "Time to restock S1"


def _regular_socks() -> Dataset:
    """Eight customers buy socks every 10 days (a regular, replenishable category) and a hat once.

    Customer ``k`` starts on day ``k``; ``c0`` switches from sock ``s0`` to ``s1`` for its last purchase,
    so its next socks are due 10 days after *that* purchase, whichever pair it rebuys."""
    rows = []
    for k in range(8):
        for j in range(4):
            item = "s1" if (k == 0 and j == 3) else f"s{k % 3}"
            rows.append((f"c{k}", item, T0 + timedelta(days=k + 10 * j)))
        rows.append((f"c{k}", "h1", T0 + timedelta(days=k)))
    inter = pl.DataFrame({"customer_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                          "ts": [r[2] for r in rows]})
    items = pl.DataFrame({"item_id": ["s0", "s1", "s2", "h1"], "category": ["socks"] * 3 + ["hats"],
                          "price": [5.0, 6.0, 7.0, 20.0]})
    return Dataset(inter, items, source="regular-socks")


def test_due_date_is_the_last_purchase_plus_the_interval() -> None:
    model = BuyAgain().fit(_regular_socks())
    assert model.replenishable_categories().filter(pl.col("category") == "socks")["replenishable"].item()
    due = model.due_dates([f"c{k}" for k in range(8)] + ["nobody"])
    assert "nobody" not in due["customer_id"].to_list()  # unknown customers: no rows, no error
    socks = due.filter(pl.col("item_id").str.starts_with("s"))
    for cid, item, last, interval, when in socks.iter_rows():
        k = int(cid[1:])
        assert interval == pytest.approx(10.0, abs=1e-6)
        # the category's last purchase (day k + 30) + 10 days, for every sock the customer bought
        assert when == T0 + timedelta(days=k + 40), (cid, item)
    c0 = socks.filter(pl.col("customer_id") == "c0").sort("item_id")
    assert c0["item_id"].to_list() == ["s0", "s1"]
    assert c0["last_bought_ts"].to_list() == [T0 + timedelta(days=20), T0 + timedelta(days=30)]
    assert c0["due_ts"].n_unique() == 1  # s0 is due when the socks are, not 10 days after s0
    # recommend_with_sources carries the same prediction
    top = model.recommend_with_sources(["c0"], 5)
    assert dict(zip(top["item_id"], top["due_ts"])) == {
        i: t for i, t in due.filter(pl.col("customer_id") == "c0").select("item_id", "due_ts").iter_rows()}


def test_recommend_file_carries_reason_text_source_date_and_due_date(synthetic_bundle_dir: Path) -> None:
    bundle = Bundle.load(synthetic_bundle_dir)
    names = item_names(bundle.catalogue)
    ids = bundle.hybrid.history.customers.ids[:300].tolist() + ["NEVER-SEEN"]
    lists = pl.concat(recommend_batches(bundle.hybrid, ids, 12, batch=100, progress=False, names=names))
    assert lists.columns == list(OUTPUT_COLUMNS)
    assert lists.select(OUTPUT_COLUMNS[:5]).columns == ["customer_id", "rank", "item_id", "score", "reason_type"]
    assert lists["reason_text"].null_count() == 0
    assert lists["reason_text"].to_list() == [
        reason_text(r, s, d, names) for r, s, d in lists.select("reason_type", "source_item_id", "source_date")
        .iter_rows()]
    again = lists.filter(pl.col("reason_type") == "buy_again")
    assert again.height > 50 and again["due_date"].null_count() == 0
    assert lists.filter(pl.col("reason_type") != "buy_again")["due_date"].null_count() \
        == lists.height - again.height
    expected = bundle.hybrid.buy_again.due_dates(again["customer_id"].unique().to_list())
    joined = again.join(expected, on=["customer_id", "item_id"])
    assert joined.height == again.height
    assert (joined["due_date"] == joined["due_ts"].cast(pl.Date)).all()
    # a buy-again item's source is the customer's own last purchase of it, before its due date
    assert (joined["source_date"] <= joined["due_date"]).all()


@pytest.mark.parametrize("window", [(3.0, 14.0), (0.0, 0.0)])
def test_replenishment_sends_only_items_due_within_the_window(synthetic_bundle_dir: Path,
                                                              window: tuple[float, float]) -> None:
    data = generate_shop(seed=0).dataset
    bundle = Bundle.load(synthetic_bundle_dir)
    now = default_now(data)
    campaign = campaign_from_dict({
        "name": "restock", "audience": {"all_customers": True}, "n_picks": 3, "frequency_cap": None,
        "resend_window_days": None, "holdout_share": 0.0,
        "strategy": {"kind": "replenishment", "due_within_days": list(window)},
    }, source="test.yaml")
    picks = plan_campaign(campaign, bundle, data, placements=load_placements(ROOT / "configs" / "placements.yaml"),
                          now=now).picks
    before, after = window
    # what the model predicts, asked directly (the run folded the same purchases into its bundle)
    due = Bundle.load(synthetic_bundle_dir).hybrid.buy_again.due_dates(
        data.customers["customer_id"].to_list(), at=now)
    late = (pl.lit(now) - pl.col("due_ts")).dt.total_seconds() / 86_400
    in_window = due.filter((late >= -before) & (late <= after))
    assert set(picks["reason"]) <= {"replenish_due"}
    assert picks["due_date"].null_count() == 0 and picks["reason_text"].str.starts_with("Time to restock").all()
    got = picks.join(in_window, on=["customer_id", "item_id"], how="left")
    assert got["due_ts"].null_count() == 0, "a pick outside the due window"
    assert (got["due_date"] == got["due_ts"].cast(pl.Date)).all()
    if window == (3.0, 14.0):
        assert picks.height > 20
        # nobody whose items are all overdue by more than two weeks, or not due for three days, is mailed
        assert set(picks["customer_id"]) <= set(in_window["customer_id"])

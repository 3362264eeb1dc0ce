"""Item co-purchase and buy-again recover what the synthetic shop planted.

The synthetic shop plants same-order co-purchases (shirts → ties, jeans → t-shirts), directional
follow-up complements 3–30 days later (trousers → belts, coats → gloves; never the reverse) and
replenishment (socks every ~60 days, underwear every ~90).  The contract suite already checks
shapes, determinism and persistence on ``tiny``; this file checks that the models find the planted
structure and that fold-in, erasure and explanations behave.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from recsys.data.synthetic import SyntheticShop, generate_shop
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError, UnknownIdError
from recsys.models.base import PAD_ID
from recsys.models.buy_again import BuyAgain
from recsys.models.copurchase import CoPurchase


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def shop() -> SyntheticShop:
    return generate_shop(seed=0)


@pytest.fixture(scope="module")
def category(shop: SyntheticShop) -> dict[str, str]:
    items = shop.dataset.items
    return dict(zip(items["item_id"].to_list(), items["category"].to_list(), strict=True))


@pytest.fixture(scope="module")
def lines(shop: SyntheticShop) -> pl.DataFrame:
    ds = shop.dataset
    return ds.purchases.join(ds.items.select("item_id", "category"), on="item_id", how="left")


@pytest.fixture(scope="module")
def same_order(shop: SyntheticShop) -> CoPurchase:
    return CoPurchase().fit(shop.dataset)


@pytest.fixture(scope="module")
def windowed(shop: SyntheticShop) -> CoPurchase:
    return CoPurchase(window_days=30.0).fit(shop.dataset)


@pytest.fixture(scope="module")
def buy_again(shop: SyntheticShop) -> BuyAgain:
    return BuyAgain().fit(shop.dataset)


def _top_neighbour_categories(model: CoPurchase, category: dict[str, str], source: str) -> Counter[str]:
    """Category of the best neighbour of every item of ``source`` that has neighbours."""
    counts: Counter[str] = Counter()
    for item, cat in category.items():
        if cat == source:
            frame = model.neighbours_frame(item)
            if frame.height:
                counts[category[frame["neighbour_id"][0]]] += 1
    return counts


def _purchase(customer: str, item: str, ts: datetime, order: str) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": [customer], "item_id": [item], "ts": [ts], "order_id": [order]})


# ---------------------------------------------------------------------------------- co-purchase
def test_same_order_neighbours_recover_planted_co_purchase(
    shop: SyntheticShop, same_order: CoPurchase, category: dict[str, str]
) -> None:
    assert shop.truth.co_purchase["shirts"]["ties"] > 0
    shirts = _top_neighbour_categories(same_order, category, "shirts")
    assert shirts.most_common(1)[0][0] == "ties"
    assert shirts["ties"] > sum(shirts.values()) / 2
    # same-order co-purchase is symmetric: ties lead back to shirts
    assert _top_neighbour_categories(same_order, category, "ties").most_common(1)[0][0] == "shirts"


def test_window_finds_directional_complements(
    shop: SyntheticShop, windowed: CoPurchase, same_order: CoPurchase, category: dict[str, str]
) -> None:
    assert "belts" in shop.truth.complements["trousers"] and "gloves" in shop.truth.complements["coats"]
    trousers = _top_neighbour_categories(windowed, category, "trousers")
    coats = _top_neighbour_categories(windowed, category, "coats")
    assert trousers.most_common(1)[0][0] == "belts" and coats.most_common(1)[0][0] == "gloves"
    # the relation is directional: belts do not lead to trousers
    belts = _top_neighbour_categories(windowed, category, "belts")
    assert belts["trousers"] == 0
    # a follow-up order is not the same order: without the window these pairs are not found
    assert _top_neighbour_categories(same_order, category, "trousers")["belts"] == 0


def test_neighbours_frame_columns_and_order(same_order: CoPurchase, category: dict[str, str]) -> None:
    item = next(
        i for i, c in category.items() if c == "shirts" and same_order.neighbours_frame(i).height >= 2
    )
    frame = same_order.neighbours_frame(item)
    assert frame.columns == ["item_id", "neighbour_id", "support", "confidence", "lift", "score"]
    assert (frame["item_id"] == item).all() and item not in frame["neighbour_id"].to_list()
    assert frame["score"].is_sorted(descending=True)
    assert (frame["support"] >= same_order.min_support).all() and (frame["lift"] > 1).all()
    assert frame.height <= same_order.max_neighbours
    with pytest.raises(UnknownIdError, match="nope"):
        same_order.neighbours_frame("nope")


def test_shrinkage_lowers_lift_of_rare_pairs() -> None:
    """a→b seen once and c→d seen 50 times, both with confidence 1 and equal base rates."""
    t0 = datetime(2025, 1, 1)
    baskets = [["a", "b"]] + [["c", "d"]] * 50 + [["b"]] * 49 + [["z"]] * 900
    rows = [
        (f"u{k}", item, t0 + timedelta(hours=k), f"o{k}")
        for k, basket in enumerate(baskets)
        for item in basket
    ]
    inter = pl.DataFrame(rows, schema=["customer_id", "item_id", "ts", "order_id"], orient="row")
    data = Dataset(inter, pl.DataFrame({"item_id": ["a", "b", "c", "d", "z"]}))
    shrunk = CoPurchase(min_support=1, shrinkage=10.0).fit(data)
    ab, cd = shrunk.neighbours_frame("a").row(0, named=True), shrunk.neighbours_frame("c").row(0, named=True)
    assert ab["neighbour_id"] == "b" and cd["neighbour_id"] == "d"
    assert ab["confidence"] == pytest.approx(1.0) and cd["confidence"] == pytest.approx(1.0)
    assert ab["lift"] < cd["lift"] and ab["score"] < cd["score"]
    raw = CoPurchase(min_support=1, shrinkage=0.0).fit(data)
    assert raw.neighbours_frame("a")["lift"][0] == pytest.approx(raw.neighbours_frame("c")["lift"][0])
    # min_support drops the pair seen once
    assert CoPurchase(min_support=3).fit(data).neighbours_frame("a").height == 0


def test_complements_of_a_cart(same_order: CoPurchase, category: dict[str, str]) -> None:
    shirt = next(
        i for i, c in category.items() if c == "shirts" and same_order.neighbours_frame(i).height >= 3
    )
    one = same_order.complements(shirt, n=5)
    assert one.ids.shape == (5,) and one.ids[0] != PAD_ID
    as_list = same_order.complements([shirt], n=5)
    assert list(as_list.ids) == list(one.ids)
    np.testing.assert_allclose(as_list.scores, one.scores)
    top = str(one.ids[0])
    cart = same_order.complements([shirt, top], n=5)
    assert cart.ids.shape == (5,)  # a list is ONE cart: 1-d result
    assert shirt not in set(cart.ids) and top not in set(cart.ids)
    assert list(cart.ids) != list(one.ids)
    excluded = same_order.complements(shirt, n=5, exclude=[top])
    assert top not in set(excluded.ids)
    # unknown items: ignored by default, an error when asked
    assert list(same_order.complements([shirt, "nope"], n=5).ids) == list(one.ids)
    assert (same_order.complements(["nope"], n=3).ids == PAD_ID).all()
    with pytest.raises(UnknownIdError, match="nope"):
        same_order.complements([shirt, "nope"], n=5, on_unknown="raise")


def test_recommend_with_sources_explains_recommend(shop: SyntheticShop, same_order: CoPurchase) -> None:
    customers = shop.dataset.purchases["customer_id"].unique().sort().to_list()[:40]
    recs = same_order.recommend(customers, n=4, exclude_bought=True)
    frame = same_order.recommend_with_sources(customers, n=4, exclude_bought=True)
    assert frame.columns == ["customer_id", "rank", "item_id", "score", "source_item_id", "source_ts"]
    assert frame.height == int((recs.ids != PAD_ID).sum()) > 0
    bought = shop.dataset.purchases.group_by("customer_id", "item_id").agg(pl.col("ts").max())
    joined = frame.join(
        bought, left_on=["customer_id", "source_item_id"], right_on=["customer_id", "item_id"]
    )
    assert joined.height == frame.height  # every source is a past purchase of that customer ...
    assert (joined["source_ts"] == joined["ts"]).all()  # ... dated by its last purchase
    assert frame.join(bought, on=["customer_id", "item_id"]).height == 0  # exclude_bought honoured
    for row in frame.iter_rows(named=True):
        b = customers.index(row["customer_id"])
        assert recs.ids[b, row["rank"] - 1] == row["item_id"]
        assert recs.scores[b, row["rank"] - 1] == pytest.approx(row["score"], rel=1e-5)


def test_partial_fit_recent_orders_count_most(
    shop: SyntheticShop, same_order: CoPurchase, category: dict[str, str]
) -> None:
    # two items with disjoint neighbour lists whose best scores are within a factor 1.5: whichever
    # was bought last must explain the top recommendation
    tops = {}
    for item in sorted(category):
        frame = same_order.neighbours_frame(item)
        if frame.height:
            tops[item] = (float(frame["score"][0]), set(frame["neighbour_id"].to_list()))
    x, y = next(
        (x, y)
        for x in tops
        for y in tops
        if x < y
        and not tops[x][1] & tops[y][1]
        and {x, y}.isdisjoint(tops[x][1] | tops[y][1])
        and 1 / 1.5 < tops[x][0] / tops[y][0] < 1.5
    )
    t = datetime(2026, 3, 1)
    for first, last in ((x, y), (y, x)):
        model = CoPurchase().fit(shop.dataset)
        with pytest.raises(UnknownIdError):
            model.recommend("NEW", n=3)
        model.partial_fit(
            pl.concat([_purchase("NEW", first, t, "n1"), _purchase("NEW", last, t + timedelta(days=2), "n2")])
        )
        frame = model.recommend_with_sources("NEW", n=3)
        assert frame["source_item_id"][0] == last
        assert frame["source_ts"][0] == t + timedelta(days=2)


def test_partial_fit_single_purchase_equals_cart_complements(
    shop: SyntheticShop, same_order: CoPurchase
) -> None:
    model = CoPurchase().fit(shop.dataset)
    item = next(i for i in model.item_ids_.ids if model.neighbours_frame(i).height >= 3)
    model.partial_fit(_purchase("NEW", item, datetime(2026, 3, 1), "n1"))
    recs, cart = model.recommend("NEW", n=5, exclude_bought=True), model.complements(item, n=5)
    assert list(recs.ids) == list(cart.ids)
    np.testing.assert_allclose(recs.scores, cart.scores, rtol=1e-5)
    # the fitted neighbour table is untouched by fold-in
    assert model.neighbours_frame(item).equals(same_order.neighbours_frame(item))


def test_copurchase_forget_and_save_after_fold_in(shop: SyntheticShop, tmp_path) -> None:
    model = CoPurchase().fit(shop.dataset)
    item = next(i for i in model.item_ids_.ids if model.neighbours_frame(i).height >= 3)
    model.partial_fit(_purchase("NEW", item, datetime(2026, 3, 1), "n1"))
    keep = shop.dataset.purchases["customer_id"][0]
    before = model.recommend([keep, "NEW"], n=4)
    loaded = CoPurchase.load(model.save(tmp_path / "cp"))
    after = loaded.recommend([keep, "NEW"], n=4)
    assert (before.ids == after.ids).all()
    loaded.forget(["NEW"])
    with pytest.raises(UnknownIdError, match="NEW"):
        loaded.recommend("NEW", n=3)
    assert list(loaded.recommend(keep, n=4).ids) == list(before.ids[0])


def test_copurchase_bad_params_name_the_parameter(tiny: Dataset) -> None:
    with pytest.raises(ConfigError, match="'min_support' parameter"):
        CoPurchase(min_support=0).fit(tiny)
    with pytest.raises(ConfigError, match="'window_days' parameter"):
        CoPurchase(window_days=-1.0).fit(tiny)


def test_copurchase_tiny_known_answer(tiny: Dataset) -> None:
    """a1 and a2 are bought together in two orders (o1, o3): found once min_support allows it."""
    model = CoPurchase(min_support=2, shrinkage=0.0).fit(tiny)
    frame = model.neighbours_frame("a1")
    assert frame["neighbour_id"].to_list() == ["a2"] and frame["support"][0] == 2
    assert frame["confidence"][0] == pytest.approx(2 / 4)  # a1 is in 4 orders
    ids, _ = model.recommend("c4", n=2)  # c4 bought a1 only
    assert list(ids) == ["a2", PAD_ID]
    assert list(model.complements("a2", n=1).ids) == ["a1"]


def test_copurchase_without_order_ids_groups_customer_days(tiny: Dataset) -> None:
    """Null order ids fall back to one basket per customer and day."""
    no_orders = tiny.with_interactions(tiny.interactions.with_columns(order_id=pl.lit(None, pl.String)))
    frame = CoPurchase(min_support=2, shrinkage=0.0).fit(no_orders).neighbours_frame("a1")
    assert frame["neighbour_id"].to_list() == ["a2"] and frame["support"][0] == 2
    # c5 bought s1 and b1 on day 40 in one order; split it into two order ids and it is not a pair
    split = tiny.interactions.with_columns(
        order_id=pl.when(pl.col("item_id") == "b1").then(pl.lit("x")).otherwise(pl.col("order_id"))
    )
    assert CoPurchase(min_support=1).fit(tiny).neighbours_frame("s1")["neighbour_id"].to_list() == ["b1"]
    assert CoPurchase(min_support=1).fit(tiny.with_interactions(split)).neighbours_frame("s1").height == 0


# ------------------------------------------------------------------------------------ buy-again
def test_replenishable_categories_recover_planted_intervals(shop: SyntheticShop, buy_again: BuyAgain) -> None:
    frame = buy_again.replenishable_categories()
    assert frame.columns[:5] == [
        "category",
        "repeat_rate",
        "median_interval_days",
        "n_repeaters",
        "replenishable",
    ]
    flags = dict(zip(frame["category"].to_list(), frame["replenishable"].to_list(), strict=True))
    for cat, planted in shop.truth.replenishable.items():
        assert flags[cat], cat
        assert buy_again.interval(cat) == pytest.approx(planted, rel=0.25)
    assert not flags["coats"] and not flags["jackets"]
    assert {c for c, f in flags.items() if f} == set(shop.truth.replenishable)
    row = frame.filter(pl.col("category") == "socks").row(0, named=True)
    assert row["median_interval_days"] == buy_again.interval("socks")
    with pytest.raises(UnknownIdError, match="nope"):
        buy_again.interval("nope")


def _socks_buyers(lines: pl.DataFrame, buy_again: BuyAgain) -> list[tuple[str, str, datetime, float]]:
    """(customer, last socks item, last socks time, expected interval) for customers with ≥3 socks days."""
    socks = (
        lines.filter(pl.col("category") == "socks")
        .sort("ts")
        .group_by("customer_id")
        .agg(pl.col("ts").dt.date().n_unique().alias("days"), pl.col("ts").last(), pl.col("item_id").last())
        .filter(pl.col("days") >= 3)
        .sort("customer_id")
    )
    out = []
    for cid, _, last, item in socks.iter_rows():
        frame = buy_again.recommend_with_sources(cid, n=1000)
        expected = frame.filter(pl.col("item_id") == item)["expected_interval_days"][0]
        out.append((cid, item, last, expected))
    return out


def _score_of(model: BuyAgain, cid: str, item: str, at: datetime) -> float:
    frame = model.recommend_with_sources(cid, n=1000, at=at)
    return float(frame.filter(pl.col("item_id") == item)["score"][0])


def test_due_socks_rank_first_and_just_bought_do_not(
    lines: pl.DataFrame, buy_again: BuyAgain, category: dict[str, str]
) -> None:
    buyers = _socks_buyers(lines, buy_again)
    assert len(buyers) >= 100
    due_top = 0
    for cid, item, last, expected in buyers:
        due = last + timedelta(days=expected)
        due_top += category[buy_again.recommend(cid, n=1, at=due).ids[0]] == "socks"
        # one day after buying socks they are not due: the score collapses (frequency alone would rise)
        assert _score_of(buy_again, cid, item, last + timedelta(days=1)) < 0.2 * _score_of(
            buy_again, cid, item, due
        )
    assert due_top >= 0.75 * len(buyers)


def test_fold_in_purchase_stops_socks_being_due(shop: SyntheticShop, lines: pl.DataFrame) -> None:
    model = BuyAgain().fit(shop.dataset)
    n_items = dict(lines.group_by("customer_id").agg(pl.col("item_id").n_unique()).iter_rows())
    # the socks buyer with the most other items whose socks are on top when due
    for cid, item, last, expected in sorted(
        _socks_buyers(lines, model), key=lambda b: (-n_items[b[0]], b[0])
    ):
        at = last + timedelta(days=expected)
        before = model.recommend(cid, n=3, at=at)
        if before.ids[0] == item:
            break
    else:
        pytest.fail("no customer has their socks item on top when due")
    model.partial_fit(_purchase(cid, item, at - timedelta(hours=1), "fold-in"))
    after = model.recommend(cid, n=50, at=at)
    assert after.ids[0] != item
    assert after.scores[list(after.ids).index(item)] < before.scores[0] / 5
    frame = model.recommend_with_sources(cid, n=50, at=at)
    assert frame.filter(pl.col("item_id") == item)["last_bought_ts"][0] == at - timedelta(hours=1)


def test_buy_again_is_decayed_frequency_without_repeat_and_due_terms(
    shop: SyntheticShop, lines: pl.DataFrame
) -> None:
    """The base of the score is exactly a decayed count of purchase days (the plain baseline)."""
    model = BuyAgain(repeat_exponent=0.0, min_repeat_rate=1.0).fit(shop.dataset)
    assert not model.replenishable_categories()["replenishable"].any()
    ref = lines["ts"].max()
    expected = (
        lines.with_columns(day=pl.col("ts").dt.date())
        .group_by("customer_id", "item_id", "day")
        .agg(pl.col("ts").max())
        .with_columns(w=0.5 ** ((ref - pl.col("ts")).dt.total_seconds() / 86_400 / 60.0))
        .group_by("customer_id", "item_id")
        .agg(pl.col("w").sum())
    )
    customers = (
        lines.group_by("customer_id").len().filter(pl.col("len") >= 8)["customer_id"].sort().to_list()[:20]
    )
    recs = model.recommend(customers, n=5)
    for b, cid in enumerate(customers):
        mine = expected.filter(pl.col("customer_id") == cid).sort(["w", "item_id"], descending=[True, False])
        np.testing.assert_allclose(recs.scores[b], mine["w"].to_numpy()[:5], rtol=1e-5)


def test_buy_again_exclude_bought_returns_padding(shop: SyntheticShop, buy_again: BuyAgain) -> None:
    cid = shop.dataset.purchases["customer_id"][0]
    ids, scores = buy_again.recommend([cid], n=4, exclude_bought=True)
    assert (ids == PAD_ID).all() and np.isneginf(scores).all()
    assert buy_again.recommend(cid, n=4).ids[0] != PAD_ID


def test_buy_again_with_sources_matches_recommend(shop: SyntheticShop, buy_again: BuyAgain) -> None:
    customers = shop.dataset.purchases["customer_id"].unique().sort().to_list()[:30]
    recs = buy_again.recommend(customers, n=5)
    frame = buy_again.recommend_with_sources(customers, n=5)
    assert frame.columns == [
        "customer_id",
        "rank",
        "item_id",
        "score",
        "last_bought_ts",
        "expected_interval_days",
        "due_ts",
    ]
    assert frame.height == int((recs.ids != PAD_ID).sum())
    last = shop.dataset.purchases.group_by("customer_id", "item_id").agg(pl.col("ts").max())
    joined = frame.join(last, on=["customer_id", "item_id"])
    assert joined.height == frame.height and (joined["last_bought_ts"] == joined["ts"]).all()
    assert (frame["expected_interval_days"] > 0).all()
    for row in frame.iter_rows(named=True):
        b = customers.index(row["customer_id"])
        assert recs.ids[b, row["rank"] - 1] == row["item_id"]
        assert recs.scores[b, row["rank"] - 1] == pytest.approx(row["score"], rel=1e-5)
    # default ``at`` is the reference time
    again = buy_again.recommend(customers, n=5, at=buy_again.reference_time_)
    assert (again.ids == recs.ids).all()


def test_catalogue_flag_overrides_learned_replenishment(shop: SyntheticShop, lines: pl.DataFrame) -> None:
    """Socks flagged not replenishable in the catalogue are ranked by frequency: no due dip."""
    items = shop.dataset.items.with_columns(
        replenishable=pl.when(pl.col("category") == "socks")
        .then(pl.lit(False))
        .otherwise(pl.lit(None, pl.Boolean))
    )
    model = BuyAgain().fit(Dataset(shop.dataset.interactions, items))
    learned = BuyAgain().fit(shop.dataset)
    cid, item, last, _ = _socks_buyers(lines, learned)[0]
    at = last + timedelta(days=1)
    assert model.replenishable_categories().filter(pl.col("category") == "socks")["replenishable"][0]
    assert _score_of(model, cid, item, at) > 5 * _score_of(learned, cid, item, at)


def test_buy_again_forget_and_new_customers(shop: SyntheticShop, tmp_path) -> None:
    model = BuyAgain().fit(shop.dataset)
    item = shop.dataset.purchases["item_id"][0]
    model.partial_fit(_purchase("NEW", item, datetime(2026, 2, 1), "n1"))
    assert list(model.recommend("NEW", n=2).ids) == [item, PAD_ID]
    loaded = BuyAgain.load(model.save(tmp_path / "ba"))
    assert list(loaded.recommend("NEW", n=2).ids) == [item, PAD_ID]
    keep = shop.dataset.purchases["customer_id"][0]
    before = loaded.recommend(keep, n=5)
    loaded.forget(["NEW"])
    with pytest.raises(UnknownIdError, match="NEW"):
        loaded.recommend("NEW", n=2)
    assert (loaded.recommend(keep, n=5).ids == before.ids).all()


def test_buy_again_bad_params_name_the_parameter(tiny: Dataset) -> None:
    with pytest.raises(ConfigError, match="'due_width' parameter"):
        BuyAgain(due_width=0.0).fit(tiny)
    with pytest.raises(ConfigError, match="'min_repeat_rate' parameter"):
        BuyAgain(min_repeat_rate=1.5).fit(tiny)
    model = BuyAgain().fit(tiny)
    with pytest.raises(ConfigError, match="'at' parameter"):
        model.recommend("c1", n=2, at="yesterday")  # type: ignore[arg-type]


def test_buy_again_tiny_known_answer(tiny: Dataset) -> None:
    """c5 bought s1 on two days and b1 once; s1 has the higher repeat rate and frequency."""
    model = BuyAgain().fit(tiny)
    ids, scores = model.recommend("c5", n=3)
    assert list(ids) == ["s1", "b1", PAD_ID] and scores[0] > scores[1]
    frame = model.replenishable_categories()
    socks = frame.filter(pl.col("category") == "socks").row(0, named=True)
    assert socks["repeat_rate"] == pytest.approx(1 / 3) and socks["n_repeaters"] == 1
    assert model.interval("socks") == pytest.approx(36.0)
    assert model.interval("hats") is None  # nobody bought hats


def test_buy_again_from_empty_history_folds_in(tiny: Dataset) -> None:
    model = BuyAgain().fit(tiny.with_interactions(tiny.interactions.filter(pl.lit(False))))
    model.partial_fit(tiny.interactions)
    ids, scores = model.recommend("c5", n=3)
    assert list(ids) == ["s1", "b1", PAD_ID] and scores[0] > scores[1] > 0


# ------------------------------------------------------------------------------- real data
@pytest.mark.slow
@pytest.mark.realdata
def test_buy_again_beats_decayed_frequency_on_completejourney(shared_data) -> None:
    """MAP@12 on the last 14 days of Complete Journey: BuyAgain ≥ decayed purchase frequency."""
    from recsys.data import load_dataset

    ds, _ = load_dataset("configs/datasets/completejourney.yaml", location=shared_data / "completejourney")
    purchases = ds.purchases
    cut = purchases["ts"].max() - timedelta(days=14)
    train, test = purchases.filter(pl.col("ts") <= cut), purchases.filter(pl.col("ts") > cut)
    known = train["customer_id"].unique()
    truth = (
        test.filter(pl.col("customer_id").is_in(known.implode()))
        .group_by("customer_id")
        .agg(pl.col("item_id").unique())
    )
    relevant = {c: set(items) for c, items in truth.iter_rows()}
    customers = sorted(relevant)

    def mean_ap(ranked: dict[str, list[str]]) -> float:
        total = 0.0
        for c, rel in relevant.items():
            hits, s = 0, 0.0
            for k, item in enumerate(ranked.get(c, [])[:12]):
                if item in rel:
                    hits += 1
                    s += hits / (k + 1)
            total += s / min(12, len(rel))
        return total / len(relevant)

    freq = (
        train.with_columns(w=0.5 ** ((cut - pl.col("ts")).dt.total_seconds() / 86_400 / 60.0))
        .group_by("customer_id", "item_id")
        .agg(pl.col("w").sum())
        .sort(["customer_id", "w", "item_id"], descending=[False, True, False])
        .group_by("customer_id", maintain_order=True)
        .agg(pl.col("item_id").head(12))
    )
    baseline = mean_ap({c: items for c, items in freq.iter_rows()})
    model = BuyAgain().fit(ds.with_interactions(train))
    ids, _ = model.recommend(customers, n=12, at=cut)
    mine = mean_ap({c: [i for i in ids[b] if i] for b, c in enumerate(customers)})
    assert mine >= baseline > 0.15


def test_merge_pairs_equals_a_grouped_merge() -> None:
    """The sorted in-place merge gives what grouping old and new pairs together gives."""
    import numpy as np
    import polars as pl

    from recsys.models._repeat_stats import merge_pairs

    rng = np.random.default_rng(0)
    def table(keys: np.ndarray) -> dict[str, np.ndarray]:
        k = np.unique(keys)
        return {"key": k, "n": rng.integers(1, 5, len(k)), "first": rng.random(len(k)) * 100,
                "last": rng.random(len(k)) * 100 + 100, "w": rng.random(len(k))}
    old, new = table(rng.integers(0, 500, 300)), table(rng.integers(0, 600, 40))
    got = merge_pairs(old, new)
    ref = (pl.concat([pl.DataFrame({c: np.asarray(t[c], dtype=np.int64 if c in ("key", "n") else np.float64)
                                    for c in ("key", "n", "first", "last", "w")}) for t in (old, new)])
           .group_by("key").agg(pl.col("n").sum(), pl.col("first").min(), pl.col("last").max(), pl.col("w").sum())
           .sort("key"))
    for c in ("key", "n", "first", "last", "w"):
        np.testing.assert_allclose(got[c], ref[c].to_numpy())
    assert merge_pairs(old, {c: v[:0] for c, v in new.items()})["key"].tolist() == old["key"].tolist()

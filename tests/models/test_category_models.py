"""Category affinity and the directional category-complement graph, on data with a known answer.

The synthetic shop plants directional complements (trousers → belts/shoes within 3–30 days, never
belts → trousers), so the graph must recover exactly that direction; the counting core is checked
against a brute-force loop on random data.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys.data.synthetic import SyntheticShop, generate_shop
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError, ModelFitError, UnknownIdError
from recsys.models.category_affinity import CategoryAffinity
from recsys.models.category_complements import CategoryComplements, sequence_counts

EXAMPLE_OVERRIDES = Path(__file__).resolve().parents[2] / "configs" / "complements_overrides.yaml"


@pytest.fixture(scope="module")
def shop() -> SyntheticShop:
    return generate_shop(seed=0)


@pytest.fixture(scope="module")
def graph(shop: SyntheticShop) -> CategoryComplements:
    """Default parameters; tests that mutate state fit their own copy."""
    return CategoryComplements().fit(shop.dataset)


@pytest.fixture(scope="module")
def lines(shop: SyntheticShop) -> pl.DataFrame:
    return shop.dataset.purchases.join(shop.dataset.items.select("item_id", "category"), on="item_id")


def _planted(shop: SyntheticShop) -> list[tuple[str, str]]:
    return [(a, b) for a, targets in shop.truth.complements.items() for b in targets]


def _edges(model: CategoryComplements) -> set[tuple[str, str]]:
    return set(model.graph_frame().select("source", "target").iter_rows())


# ------------------------------------------------------------------------------ the graph
def test_trousers_lead_to_belts_and_shoes(graph: CategoryComplements) -> None:
    top = graph.complements("trousers", n=2)
    assert set(top["target"]) == {"belts", "shoes"}
    assert top["rank"].to_list() == [1, 2]


def test_every_planted_complement_is_learned_near_the_top(
    graph: CategoryComplements, shop: SyntheticShop
) -> None:
    for a, b in _planted(shop):
        assert b in graph.complements(a, n=3)["target"].to_list(), f"{a} → {b} not in the top 3"


def test_graph_is_directional(graph: CategoryComplements, shop: SyntheticShop) -> None:
    edges = _edges(graph)
    reverse = [(b, a) for a, b in _planted(shop) if (b, a) in edges]
    assert reverse == [], f"reverse of planted pairs learned: {reverse}"
    assert ("trousers", "belts") in edges and ("belts", "trousers") not in edges


def test_graph_columns_are_sane(graph: CategoryComplements) -> None:
    g = graph.graph_frame()
    assert g.columns[:7] == ["source", "target", "support", "confidence", "base_rate", "lift", "origin"]
    assert g.height > 0 and (g["origin"] == "learned").all()
    assert (g["support"] >= graph.min_support).all()
    assert (g["lift"] >= graph.min_lift).all() and graph.min_lift > 1
    assert ((g["confidence"] > 0) & (g["confidence"] <= 1)).all()
    assert ((g["base_rate"] > 0) & (g["base_rate"] < 1)).all()
    # a shrunk lift above 1 needs the raw conditional probability above the base rate
    assert (g["confidence"] > g["base_rate"]).all()
    assert (g["source"] != g["target"]).all()
    per_source = g.group_by("source").agg(n=pl.len(), ranks=pl.col("rank"), lifts=pl.col("lift"))
    for row in per_source.iter_rows(named=True):
        assert row["n"] <= graph.max_per_category
        assert row["ranks"] == list(range(1, row["n"] + 1))
        assert row["lifts"] == sorted(row["lifts"], reverse=True)


def test_min_support_and_max_per_category_prune(shop: SyntheticShop, graph: CategoryComplements) -> None:
    strict = CategoryComplements(min_support=100, max_per_category=1).fit(shop.dataset)
    g = strict.graph_frame()
    assert (g["support"] >= 100).all() and g["source"].is_unique().all()
    assert _edges(strict) < _edges(graph)
    assert ("trousers", "belts") in _edges(strict)


def test_same_order_counts_basket_co_purchase(shop: SyntheticShop, graph: CategoryComplements) -> None:
    """jeans + t-shirts are planted in the same order; jeans → belts across orders."""
    basket = CategoryComplements(same_order=True).fit(shop.dataset)
    assert basket.complements("jeans", n=1)["target"].to_list() == ["t-shirts"]
    assert graph.complements("jeans", n=1)["target"].to_list() == ["belts"]


def test_complements_of_several_and_unknown(graph: CategoryComplements) -> None:
    both = graph.complements(["shirts", "trousers"], n=2)
    assert both["source"].to_list() == ["shirts", "shirts", "trousers", "trousers"]
    assert both.columns == [
        "source",
        "rank",
        "target",
        "lift",
        "support",
        "confidence",
        "base_rate",
        "origin",
    ]
    with pytest.raises(UnknownIdError, match="cufflinks"):
        graph.complements("cufflinks")


def _seasonal_shop(seed: int = 3) -> Dataset:
    """Everyone buys a, b or c in mid-November and gloves in early December (season, not cause);
    only a-buyers also buy belts five days later (cause).  Filler purchases span the year."""
    rng = np.random.default_rng(seed)
    start, rows = datetime(2025, 1, 1), []
    for k in range(300):
        cid = f"c{k:03d}"
        rows += [(cid, str(rng.choice(["x", "y", "z"])), int(d)) for d in rng.integers(0, 365, 8)]
        trigger, day = str(rng.choice(["a", "b", "c"])), int(rng.integers(312, 322))
        rows += [(cid, trigger, day), (cid, "gloves", int(rng.integers(335, 345)))]
        if trigger == "a" and rng.random() < 0.8:
            rows.append((cid, "belts", day + 5))
    inter = pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "item_id": [f"i-{r[1]}" for r in rows],
            "ts": [start + timedelta(days=r[2], hours=12) for r in rows],
        }
    )
    cats = ["a", "b", "c", "x", "y", "z", "gloves", "belts"]
    return Dataset(
        inter, pl.DataFrame({"item_id": [f"i-{c}" for c in cats], "category": cats}), source="seasonal"
    )


def test_seasonal_category_is_not_a_complement_of_everything() -> None:
    model = CategoryComplements(min_support=10).fit(_seasonal_shop())
    edges = _edges(model)
    assert ("a", "belts") in edges
    assert not {("a", "gloves"), ("b", "gloves"), ("c", "gloves")} & edges
    # gloves follow almost every November purchase, so even at min_lift=1 their lift stays ≈ 1
    loose = CategoryComplements(min_support=10, min_lift=1.0).fit(_seasonal_shop()).graph_frame()
    gloves = loose.filter((pl.col("target") == "gloves") & pl.col("source").is_in(["a", "b", "c"]))
    assert (gloves["confidence"] > 0.9).all() and (gloves["lift"] < 1.05).all()


# ------------------------------------------------------------------- the counting core
def _brute_force(
    rows: list[tuple[int, int, int]], n: int, window: float, same_order: bool, first: int, last: int
) -> tuple[np.ndarray, ...]:
    lo, hi = math.ceil(first + window), math.floor(last - window)
    by: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for c, g, d in rows:
        by[c][g].append(d)
    hits, before, support, trig = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n)), np.zeros(n)
    for cats in by.values():
        seen = set()
        for a, days in cats.items():
            for d in (d for d in days if lo <= d <= hi):
                trig[a] += 1
                for b, bdays in cats.items():
                    if b == a:
                        continue
                    if any((d <= e if same_order else d < e) and e - d <= window for e in bdays):
                        hits[a, b] += 1
                        seen.add((a, b))
                    before[a, b] += any(e < d and d - e <= window for e in bdays)
        for a, b in seen:
            support[a, b] += 1
    return trig, hits, before, support


@pytest.mark.parametrize("same_order", [False, True])
@pytest.mark.parametrize("window", [5.0, 12.5])
def test_sequence_counts_match_brute_force(same_order: bool, window: float) -> None:
    rng = np.random.default_rng(7)
    n, first, last = 4, 100, 160
    rows = sorted(
        {
            (int(c), int(g), int(d))
            for c, g, d in zip(
                rng.integers(0, 12, 600),
                rng.integers(0, n, 600),
                rng.integers(first, last + 1, 600),
                strict=True,
            )
        },
        key=lambda r: (r[0], r[2], r[1]),
    )
    c, g, d = (np.array(col, dtype=np.int64) for col in zip(*rows, strict=True))
    got = sequence_counts(c, g, d, n, window=window, same_order=same_order, first_day=first, last_day=last)
    trig, hits, before, support = _brute_force(rows, n, window, same_order, first, last)
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_array_equal(got.trig, trig)
    np.testing.assert_array_equal(got.hits[off], hits[off])
    np.testing.assert_array_equal(got.hits_before[off], before[off])
    np.testing.assert_array_equal(got.support[off], support[off])
    assert hits[off].sum() > 0


# ------------------------------------------------------------------------ recommendations
def _last_orders_with_trousers(lines: pl.DataFrame, window_days: float) -> pl.DataFrame:
    """Customers whose last order (inside the look-back window) had trousers and no belts/shoes."""
    ref = lines["ts"].max()
    return (
        lines.filter(pl.col("ts") == pl.col("ts").max().over("customer_id"))
        .group_by("customer_id")
        .agg(
            cats=pl.col("category"),
            ts=pl.col("ts").first(),
            trousers=pl.col("item_id").filter(pl.col("category") == "trousers"),
        )
        .filter(
            pl.col("cats").list.contains("trousers")
            & ~pl.col("cats").list.contains("belts")
            & ~pl.col("cats").list.contains("shoes")
            & (pl.col("ts") >= ref - timedelta(days=window_days))
        )
        .sort("customer_id")
    )


def test_recent_trousers_buyers_get_belts_or_shoes_with_sources(
    graph: CategoryComplements, lines: pl.DataFrame
) -> None:
    buyers = _last_orders_with_trousers(lines, graph.window_days)
    assert buyers.height >= 10
    ids = buyers["customer_id"].to_list()
    recs = graph.recommend(ids, n=5)
    explained = graph.recommend_with_sources(ids, n=5)
    item_cat = dict(lines.select("item_id", "category").unique().iter_rows())
    for b, row in enumerate(buyers.iter_rows(named=True)):
        top = [i for i in recs.ids[b] if i]
        assert {"belts", "shoes"} & {item_cat[i] for i in top}, row["customer_id"]
        mine = explained.filter(pl.col("customer_id") == row["customer_id"])
        assert mine["item_id"].to_list() == top  # same list, same order
        np.testing.assert_allclose(mine["score"].to_numpy(), recs.scores[b][: len(top)], rtol=1e-6)
        because = mine.filter(pl.col("category").is_in(["belts", "shoes"]))
        assert (because["source_category"] == "trousers").all()
        assert set(because["source_item_id"]) <= set(row["trousers"])
        assert (because["source_ts"] == row["ts"]).all()


def test_recommendations_never_come_from_the_trigger_category(
    graph: CategoryComplements, lines: pl.DataFrame
) -> None:
    ids = lines["customer_id"].unique().sort().to_list()
    recs = graph.recommend_with_sources(ids, n=10)
    assert recs.height > 0
    assert (recs["category"] != recs["source_category"]).all()
    assert recs.group_by("customer_id").agg(pl.col("item_id").is_unique().all())["item_id"].all()


def test_fold_in_new_trousers_purchase(shop: SyntheticShop, lines: pl.DataFrame) -> None:
    model = CategoryComplements().fit(shop.dataset)
    ref = lines["ts"].max()
    never = (
        lines.group_by("customer_id")
        .agg(trousers=(pl.col("category") == "trousers").any(), last=pl.col("ts").max())
        .filter(~pl.col("trousers") & (pl.col("last") < ref - timedelta(days=model.window_days)))
        .sort("customer_id")["customer_id"][0]
    )
    assert model.recommend_with_sources(never, n=5).height == 0  # nothing recent: no suggestion
    trousers_item = lines.filter(pl.col("category") == "trousers")["item_id"][0]
    when = ref + timedelta(days=1)
    new = pl.DataFrame({"customer_id": [never, "C-NEW"], "item_id": [trousers_item] * 2, "ts": [when] * 2})
    model.partial_fit(new)
    recs = model.recommend_with_sources([never, "C-NEW"], n=5)
    for cid in (never, "C-NEW"):
        mine = recs.filter(pl.col("customer_id") == cid)
        assert set(mine["category"]) <= {"belts", "shoes", *model.complements("trousers", n=10)["target"]}
        assert {"belts", "shoes"} <= set(mine["category"].head(4))
        assert (mine["source_item_id"] == trousers_item).all() and (mine["source_ts"] == when).all()


def test_complement_already_bought_after_trigger_is_not_suggested(
    shop: SyntheticShop, lines: pl.DataFrame
) -> None:
    model = CategoryComplements().fit(shop.dataset)
    ref = lines["ts"].max()
    trousers_item = lines.filter(pl.col("category") == "trousers")["item_id"][0]
    belt_item = lines.filter(pl.col("category") == "belts")["item_id"][0]
    t0 = ref + timedelta(days=1)
    model.partial_fit(pl.DataFrame({"customer_id": ["C-X"], "item_id": [trousers_item], "ts": [t0]}))
    assert "belts" in model.recommend_with_sources("C-X", n=6)["category"].to_list()
    model.partial_fit(
        pl.DataFrame({"customer_id": ["C-X"], "item_id": [belt_item], "ts": [t0 + timedelta(days=2)]})
    )
    after = model.recommend_with_sources("C-X", n=6)
    assert "shoes" in after["category"].to_list()
    assert after.filter(pl.col("category") == "belts").height == 0


def test_exclude_bought_and_forget(shop: SyntheticShop, lines: pl.DataFrame) -> None:
    model = CategoryComplements().fit(shop.dataset)
    ids = _last_orders_with_trousers(lines, model.window_days)["customer_id"].to_list()[:5]
    recs = model.recommend(ids, n=8, exclude_bought=True)
    for b, cid in enumerate(ids):
        bought = set(lines.filter(pl.col("customer_id") == cid)["item_id"])
        assert not bought & set(recs.ids[b])
    keep = model.recommend(ids[1:], n=5)
    model.forget([ids[0]])
    with pytest.raises(UnknownIdError, match=ids[0]):
        model.recommend(ids[0], n=5)
    again = model.recommend(ids[1:], n=5)
    assert (again.ids == keep.ids).all()


# ------------------------------------------------------------------------------ overrides
def test_override_dict_pins_adds_and_removes(shop: SyntheticShop, lines: pl.DataFrame) -> None:
    overrides = {"trousers": {"pin": ["socks"], "add": {"underwear": 9.0}, "remove": ["belts"]}}
    model = CategoryComplements(overrides=overrides).fit(shop.dataset)
    top = model.complements("trousers", n=10)
    assert top["target"].to_list()[:2] == ["socks", "underwear"]
    assert "belts" not in top["target"].to_list() and "shoes" in top["target"].to_list()
    origin = dict(zip(top["target"], top["origin"], strict=True))
    assert origin["socks"] == origin["underwear"] == "override" and origin["shoes"] == "learned"
    assert top.filter(pl.col("target") == "underwear")["lift"].item() == 9.0
    assert top["lift"][0] > top["lift"][1]  # the pin outranks the strongest other complement
    # other sources keep their learned complements
    assert model.complements("jeans", n=1)["target"].to_list() == ["belts"]
    # and recommendations follow: a trousers buyer's first suggestion is socks, never belts via trousers
    ids = _last_orders_with_trousers(lines, model.window_days)["customer_id"].to_list()
    recs = model.recommend_with_sources(ids, n=5)
    firsts = recs.filter(pl.col("rank") == 1)
    assert (firsts["category"] == "socks").mean() > 0.5  # type: ignore[operator]
    assert (
        recs.filter((pl.col("source_category") == "trousers") & (pl.col("category") == "belts")).height == 0
    )


def test_example_override_file_applies(shop: SyntheticShop) -> None:
    model = CategoryComplements(overrides=EXAMPLE_OVERRIDES).fit(shop.dataset)
    trousers = model.complements("trousers", n=10)
    assert trousers["target"][0] == "belts"
    assert trousers.filter(pl.col("target") == "belts")["origin"].item() == "override"
    socks = trousers.filter(pl.col("target") == "socks")
    assert socks["lift"].item() == 1.5 and socks["origin"].item() == "override"
    assert "jeans" not in trousers["target"].to_list()
    assert "skirts" not in model.complements("dresses", n=10)["target"].to_list()
    assert model.graph_frame().filter(pl.col("pinned"))["target"].sort().to_list() == ["belts", "ties"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("trousers:\n  add: {cufflinks: 2.0}\n", "cufflinks"),
        ("cravats:\n  pin: [ties]\n", "cravats"),
        ("trousers:\n  remove: [Belts]\n", "Belts"),
    ],
)
def test_unknown_category_in_override_file_names_file_and_category(
    shop: SyntheticShop, tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"overrides\.yaml.*'{named}'.*closest"):
        CategoryComplements(overrides=path).fit(shop.dataset)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("trousers:\n  pins: [belts]\n", "trousers.pins"),
        ("trousers:\n  add: {belts: -1}\n", "trousers.add.belts"),
        ("trousers:\n  pin: belts\n", "trousers.pin"),
        ("trousers:\n  pin: [belts]\n  remove: [belts]\n", "belts"),
        ("trousers:\n  add: {trousers: 2.0}\n", "its own complement"),
        ("- trousers\n", "must map"),
        ("trousers: [belts\n", "not valid YAML"),
    ],
)
def test_malformed_override_file_is_config_error(
    shop: SyntheticShop, tmp_path: Path, text: str, match: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        CategoryComplements(overrides=path).fit(shop.dataset)


def test_missing_override_file_is_config_error(shop: SyntheticShop, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        CategoryComplements(overrides=tmp_path / "nope.yaml").fit(shop.dataset)


# --------------------------------------------------------------------- export / persistence
def test_export_csv_and_markdown(graph: CategoryComplements, tmp_path: Path) -> None:
    csv = graph.export(tmp_path / "out" / "complements.csv", n=3)
    frame = pl.read_csv(csv)
    assert frame.columns[:8] == [
        "source",
        "rank",
        "target",
        "support",
        "confidence",
        "base_rate",
        "lift",
        "origin",
    ]
    row = frame.filter((pl.col("source") == "trousers") & (pl.col("target") == "belts"))
    assert row.height == 1 and row["support"].item() >= graph.min_support and row["lift"].item() > 1
    assert frame.group_by("source").len()["len"].max() <= 3
    md = graph.export(tmp_path / "complements.md", n=3).read_text()
    assert md.startswith("# Category complements")
    assert any(line.startswith("| trousers | 1 | belts |") for line in md.splitlines())
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["complements.csv", "complements.md"]
    with pytest.raises(ConfigError, match="'path'"):
        graph.export(tmp_path / "complements.xlsx")


def test_save_load_keeps_graph_history_and_sources(
    shop: SyntheticShop, lines: pl.DataFrame, tmp_path: Path
) -> None:
    model = CategoryComplements(overrides=EXAMPLE_OVERRIDES).fit(shop.dataset)
    loaded = CategoryComplements.load(model.save(tmp_path / "m"))
    assert loaded.graph_frame().equals(model.graph_frame())
    ids = lines["customer_id"].unique().sort().to_list()
    assert loaded.recommend_with_sources(ids, n=5).equals(model.recommend_with_sources(ids, n=5))


def test_bad_params_name_the_parameter(shop: SyntheticShop) -> None:
    for kwargs, name in [
        ({"window_days": 0}, "window_days"),
        ({"min_support": 0}, "min_support"),
        ({"shrinkage": -1.0}, "shrinkage"),
        ({"max_per_category": 0}, "max_per_category"),
        ({"same_order": "yes"}, "same_order"),
        ({"min_lift": 0.5}, "min_lift"),
    ]:
        with pytest.raises(ConfigError, match=f"'{name}' parameter"):
            CategoryComplements(**kwargs).fit(shop.dataset)  # type: ignore[arg-type]


# ----------------------------------------------------------------------- category affinity
@pytest.fixture(scope="module")
def affinity(shop: SyntheticShop) -> CategoryAffinity:
    return CategoryAffinity().fit(shop.dataset)


def test_heavy_trousers_buyers_over_index_on_trousers(
    affinity: CategoryAffinity, lines: pl.DataFrame
) -> None:
    counts = lines.group_by("customer_id").agg(trousers=(pl.col("category") == "trousers").sum(), n=pl.len())
    heavy = (
        counts.filter((pl.col("trousers") >= 3) & (pl.col("trousers") >= 0.25 * pl.col("n")))
        .sort("customer_id")["customer_id"]
        .to_list()
    )
    assert len(heavy) >= 10
    top = affinity.top_categories(heavy, n=3)
    assert top.columns == ["customer_id", "rank", "category", "affinity", "lift", "share"]
    trousers = top.filter(pl.col("category") == "trousers")
    assert sorted(trousers["customer_id"]) == heavy
    assert (trousers["lift"] > 1.5).all()
    # one purchase is weak evidence: a customer whose only purchase was trousers has share 1 (raw lift
    # 1 / shop share ≈ 15) but the prior keeps the lift below every heavy buyer's median
    once = counts.filter((pl.col("n") == 1) & (pl.col("trousers") == 1))["customer_id"].to_list()
    frame = affinity.affinity_frame().filter(
        (pl.col("category") == "trousers") & pl.col("customer_id").is_in(once)
    )
    assert frame.height == len(once) > 0 and (frame["share"] == 1.0).all()
    assert frame["lift"].max() < 4 and frame["lift"].median() < trousers["lift"].median()  # type: ignore[operator]


def test_affinity_frame_shares(affinity: CategoryAffinity) -> None:
    frame = affinity.affinity_frame()
    assert frame.columns == ["customer_id", "category", "share", "affinity", "lift"]
    sums = frame.group_by("customer_id").agg(pl.col("share").sum())["share"]
    np.testing.assert_allclose(sums.to_numpy(), 1.0, rtol=1e-9)
    assert (frame["affinity"] < frame["share"]).any() and (frame["lift"] > 0).all()


def test_affinity_recommends_bestsellers_of_top_categories(
    affinity: CategoryAffinity, lines: pl.DataFrame
) -> None:
    ids = lines["customer_id"].unique().sort().to_list()[:50]
    recs = affinity.recommend(ids, n=3)
    top = affinity.top_categories(ids, n=3)
    item_cat = dict(lines.select("item_id", "category").unique().iter_rows())
    for b, cid in enumerate(ids):
        cats = set(top.filter(pl.col("customer_id") == cid)["category"])
        assert {item_cat[i] for i in recs.ids[b] if i} <= cats


def test_affinity_department_level(shop: SyntheticShop) -> None:
    model = CategoryAffinity(level="department").fit(shop.dataset)
    frame = model.affinity_frame()
    assert "department" in frame.columns
    assert set(frame["department"]) <= set(shop.truth.departments.values())


def test_affinity_fold_in_and_forget(shop: SyntheticShop, lines: pl.DataFrame) -> None:
    model = CategoryAffinity().fit(shop.dataset)
    bags = lines.filter(pl.col("category") == "bags")["item_id"].unique().sort().to_list()[:3]
    when = lines["ts"].max()
    model.partial_fit(pl.DataFrame({"customer_id": ["C-NEW"] * 3, "item_id": bags, "ts": [when] * 3}))
    assert model.top_categories("C-NEW", n=1)["category"].to_list() == ["bags"]
    model.forget(["C-NEW"])
    with pytest.raises(UnknownIdError):
        model.top_categories("C-NEW")


# -------------------------------------------------------------------------- no categories
@pytest.mark.parametrize("cls", [CategoryAffinity, CategoryComplements])
def test_no_categories_is_a_clear_fit_error(cls: type, tiny: Dataset) -> None:
    bare = Dataset(
        tiny.interactions, tiny.items.with_columns(category=pl.lit(None, pl.String)), source="bare"
    )
    assert not bare.has_categories
    with pytest.raises(ModelFitError, match="no categor"):
        cls().fit(bare)


def test_tiny_shop_degrades_to_an_empty_graph(tiny: Dataset, caplog: pytest.LogCaptureFixture) -> None:
    model = CategoryComplements().fit(tiny)
    assert model.graph_frame().height == 0
    assert "learned no complements" in caplog.text
    assert model.recommend_with_sources(["c1", "c5"], n=3).height == 0

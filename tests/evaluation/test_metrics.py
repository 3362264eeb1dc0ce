"""Metrics: the vectorised code against a brute-force pure-Python reference, plus hand-computed values.

The reference (``_ref_*``) is written the slow, obvious way, straight from the definitions in
``recsys.evaluation.metrics``; hypothesis feeds both the same random small worlds (empty lists,
empty test windows, repeated purchases, ranks with gaps, shuffled rows) and they must agree to 1e-9.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recsys.dataset import Dataset
from recsys.evaluation import (
    METRIC_COLUMNS,
    activity_tiers,
    cold_vs_known,
    evaluate,
    evaluate_by_group,
    per_customer_metrics,
    precision_recall_curve,
    recommendations_frame,
)
from recsys.exceptions import ConfigError, SchemaError
from recsys.models import Popularity
from recsys.split import temporal_split

TOL = 1e-9
CUSTOMERS = [f"c{i}" for i in range(6)]
ITEMS = [f"i{i}" for i in range(10)]
CATEGORY = {item: ("A", "B", "C", None)[n % 4] for n, item in enumerate(ITEMS)}  # i3, i7: no category


# --------------------------------------------------------------------------- frame builders
def recs_of(lists: dict[str, list[str]], *, ranks: dict[str, list[int]] | None = None) -> pl.DataFrame:
    rows = [
        (c, (ranks[c][r] if ranks else r + 1), item)
        for c, items in lists.items()
        for r, item in enumerate(items)
    ]
    return pl.DataFrame(
        rows, schema={"customer_id": pl.String, "rank": pl.Int64, "item_id": pl.String}, orient="row"
    )


def buys(pairs: dict[str, list[str]]) -> pl.DataFrame:
    rows = [(c, i) for c, items in pairs.items() for i in items]
    return pl.DataFrame(rows, schema={"customer_id": pl.String, "item_id": pl.String}, orient="row")


ITEMS_FRAME = pl.DataFrame(
    {"item_id": ITEMS, "category": [CATEGORY[i] for i in ITEMS]},
    schema={"item_id": pl.String, "category": pl.String},
)


# --------------------------------------------------------------------------- the brute-force reference
def _ref_scores(served: list[str], rel: set[str], k: int) -> dict[str, float]:
    served = served[:k]
    hits, ap, dcg = 0, 0.0, 0.0
    for r, item in enumerate(served, start=1):
        if item in rel:
            hits += 1
            ap += hits / r
            dcg += 1 / math.log2(r + 1)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, min(k, len(rel)) + 1))
    return {
        "ap": ap / min(k, len(rel)),
        "ndcg": dcg / idcg,
        "recall": hits / len(rel),
        "precision": hits / k,
        "hit": float(hits > 0),
    }


def _ref_per_customer(
    lists: dict[str, list[str]], test: dict[str, list[str]], train: dict[str, list[str]], k: int, variant: str
) -> dict[str, dict[str, float]]:
    out = {}
    for c, bought in test.items():
        if not bought:
            continue
        served = lists.get(c, [])[:k]
        before = set(train.get(c, []))
        if variant == "all":
            rel = set(bought)
        elif variant == "new":
            rel = set(bought) - before
        else:
            before_cats = {CATEGORY[i] for i in before} - {None}
            rel = {CATEGORY[i] for i in bought} - {None} - before_cats
            cats: list[str] = []
            for item in served:
                if CATEGORY[item] is not None and CATEGORY[item] not in cats:
                    cats.append(CATEGORY[item])
            served = cats
        if rel:
            out[c] = _ref_scores(served, rel, k)
    return out


def _ref_list_level(
    lists: dict[str, list[str]], test: dict[str, list[str]], train: dict[str, list[str]], k: int
) -> dict[str, float | None]:
    active = [c for c, bought in test.items() if bought and lists.get(c)]
    if not active:
        return {"coverage": 0.0 if any(test.values()) else None, "diversity": None, "novelty": None}
    served = {c: lists[c][:k] for c in active}
    n_train = len([c for c, b in train.items() if b])
    buyers = {i: sum(1 for b in train.values() if i in b) for i in ITEMS}
    div = [len({CATEGORY[i] for i in s}) / len(s) for s in served.values()]
    nov = [sum(-math.log2((buyers[i] + 1) / (n_train + 1)) for i in s) / len(s) for s in served.values()]
    return {
        "coverage": len({i for s in served.values() for i in s}) / len(ITEMS),
        "diversity": sum(div) / len(div),
        "novelty": sum(nov) / len(nov),
    }


# --------------------------------------------------------------------------- hypothesis worlds
@st.composite
def worlds(draw: st.DrawFn) -> tuple[dict[str, list[str]], dict[str, list[int]], dict, dict, int]:
    custs = draw(st.lists(st.sampled_from(CUSTOMERS), unique=True, max_size=6))
    lists = {c: draw(st.lists(st.sampled_from(ITEMS), unique=True, max_size=8)) for c in custs}
    lists = {c: v for c, v in lists.items() if v}
    # ranks: strictly increasing with gaps (a rule removed items); only their order may matter
    ranks = {
        c: sorted(draw(st.lists(st.integers(1, 40), unique=True, min_size=len(v), max_size=len(v))))
        for c, v in lists.items()
    }
    test = {c: draw(st.lists(st.sampled_from(ITEMS), max_size=6)) for c in CUSTOMERS}  # repeats allowed
    train = {c: draw(st.lists(st.sampled_from(ITEMS), max_size=6)) for c in CUSTOMERS}
    k = draw(st.integers(1, 6))
    return lists, ranks, test, train, k


EMPTY_WORLD = ({}, {}, {c: [] for c in CUSTOMERS}, {c: [] for c in CUSTOMERS}, 3)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), seed=st.integers(0, 2**16))
@example(world=EMPTY_WORLD, seed=0)
@example(world=({"c0": ["i0"]}, {"c0": [1]}, {"c0": [], "c1": ["i0"]}, {"c1": ["i0"]}, 1), seed=0)
def test_matches_brute_force_reference(world: tuple, seed: int) -> None:
    lists, ranks, test, train, k = world
    recs = recs_of(lists, ranks=ranks)
    recs = recs.sample(fraction=1.0, shuffle=True, seed=seed)  # row order must not matter, only rank
    variants = ("all", "new", "category")
    pc = per_customer_metrics(recs, buys(test), train=buys(train), items=ITEMS_FRAME, k=k, variants=variants)
    summary = evaluate(recs, buys(test), train=buys(train), items=ITEMS_FRAME, k=k, variants=variants)
    assert summary.columns == list(METRIC_COLUMNS) and summary["variant"].to_list() == list(variants)
    ref_lists = _ref_list_level(lists, test, train, k)
    for variant in variants:
        ref = _ref_per_customer(lists, test, train, k, variant)
        got = pc.filter(pl.col("variant") == variant)
        assert sorted(got["customer_id"].to_list()) == sorted(ref)
        for row in got.iter_rows(named=True):
            for metric, value in ref[row["customer_id"]].items():
                assert row[metric] == pytest.approx(value, abs=TOL), (variant, row["customer_id"], metric)
            assert row["has_recs"] == bool(lists.get(row["customer_id"]))
        line = summary.filter(pl.col("variant") == variant).row(0, named=True)
        assert line["n_customers"] == len(ref)
        assert line["n_without_recs"] == sum(1 for c in ref if not lists.get(c))
        for metric, col in (
            ("ap", "map"),
            ("ndcg", "ndcg"),
            ("recall", "recall"),
            ("precision", "precision"),
            ("hit", "hit_rate"),
        ):
            if ref:
                assert line[col] == pytest.approx(sum(r[metric] for r in ref.values()) / len(ref), abs=TOL)
            else:
                assert line[col] is None
        for col, value in ref_lists.items():
            assert line[col] == (pytest.approx(value, abs=TOL) if value is not None else None), col


@settings(max_examples=25, deadline=None)
@given(world=worlds())
def test_curve_points_equal_evaluate_at_each_k(world: tuple) -> None:
    lists, ranks, test, train, _ = world
    recs = recs_of(lists, ranks=ranks)
    for variant in ("all", "category"):
        curve = precision_recall_curve(
            recs, buys(test), ks=(1, 2, 3, 5), variant=variant, train=buys(train), items=ITEMS_FRAME
        )
        assert curve["k"].to_list() == [1, 2, 3, 5]
        for kk, precision, recall in curve.iter_rows():
            line = evaluate(
                recs, buys(test), train=buys(train), items=ITEMS_FRAME, k=kk, variants=(variant,)
            ).row(0, named=True)
            assert precision == pytest.approx(line["precision"], abs=TOL)
            assert recall == pytest.approx(line["recall"], abs=TOL)


# --------------------------------------------------------------------------- hand-computed values
def test_known_values_rel_non_rel() -> None:
    recs = recs_of({"c1": ["x", "n", "y"]})
    test = buys({"c1": ["x", "y"]})
    line = evaluate(recs, test, k=3, variants=("all",)).row(0, named=True)
    assert line["map"] == pytest.approx((1 + 2 / 3) / 2, abs=TOL)
    assert line["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)), abs=TOL)
    assert line["recall"] == 1.0 and line["hit_rate"] == 1.0
    assert line["precision"] == pytest.approx(2 / 3, abs=TOL)
    # precision divides by K even when the list is shorter than K
    assert evaluate(recs, test, k=12, variants=("all",))["precision"][0] == pytest.approx(2 / 12, abs=TOL)


def test_ap_denominator_is_min_k_and_relevant() -> None:
    recs = recs_of({"c1": ["a", "b", "z"]})
    test = buys({"c1": ["a", "b", "c", "d", "e"]})
    line = evaluate(recs, test, k=2, variants=("all",)).row(0, named=True)
    assert line["map"] == pytest.approx(1.0, abs=TOL)  # 2 hits in 2 slots: perfect at K=2
    assert line["recall"] == pytest.approx(2 / 5, abs=TOL)
    assert evaluate(recs, test, k=3, variants=("all",))["map"][0] == pytest.approx(2 / 3, abs=TOL)


def test_customers_without_recs_count_as_zero() -> None:
    recs = recs_of({"c1": ["x"], "ghost": ["x"]})  # ghost bought nothing in the test window: ignored
    test = buys({"c1": ["x"], "c2": ["x"]})
    line = evaluate(recs, test, k=5, variants=("all",)).row(0, named=True)
    assert line["n_customers"] == 2 and line["n_without_recs"] == 1
    assert line["map"] == pytest.approx(0.5, abs=TOL) and line["hit_rate"] == pytest.approx(0.5, abs=TOL)
    pc = per_customer_metrics(recs, test, k=5, variants=("all",))
    assert pc.filter(pl.col("customer_id") == "c2").select("ap", "has_recs").row(0) == (0.0, False)
    assert "ghost" not in pc["customer_id"].to_list()


def test_new_variant_excludes_previously_bought() -> None:
    recs = recs_of({"c1": ["old", "fresh"], "c2": ["old"]})
    test = buys({"c1": ["old", "fresh"], "c2": ["old"]})
    train = buys({"c1": ["old"], "c2": ["old"]})
    out = evaluate(recs, test, train=train, k=2)
    all_, new = out.row(0, named=True), out.row(1, named=True)
    assert (all_["variant"], new["variant"]) == ("all", "new")
    assert all_["n_customers"] == 2 and all_["map"] == pytest.approx(1.0, abs=TOL)
    # c2 only re-bought: nothing new to find, so c2 leaves the "new" average; c1's hit is at rank 2
    assert new["n_customers"] == 1 and new["map"] == pytest.approx(0.5, abs=TOL)
    with pytest.raises(ConfigError, match="train="):
        evaluate(recs, test, k=2, variants=("all", "new"))


def test_category_variant_scores_first_time_categories() -> None:
    items = pl.DataFrame(
        {"item_id": ["t1", "t2", "b1", "s1"], "category": ["trousers", "trousers", "belts", "shoes"]}
    )
    # served categories: trousers, belts (t2 repeats trousers and is dropped), shoes
    recs = recs_of({"c1": ["t1", "t2", "b1", "s1"]})
    test = buys({"c1": ["b1", "t2"]})  # belts are new; trousers were bought before
    train = buys({"c1": ["t1"]})
    line = evaluate(recs, test, train=train, items=items, k=4, variants=("category",)).row(0, named=True)
    assert line["n_customers"] == 1
    assert line["map"] == pytest.approx(1 / 2, abs=TOL)  # the only relevant category sits at position 2
    assert line["recall"] == 1.0
    with pytest.raises(ConfigError, match="categories"):
        evaluate(
            recs,
            test,
            train=train,
            items=items.with_columns(category=pl.lit(None, pl.String)),
            variants=("category",),
        )


def test_list_level_metrics_known_values() -> None:
    items = pl.DataFrame({"item_id": ["a", "b", "c", "d"], "category": ["X", "X", "Y", "Y"]})
    recs = recs_of({"c1": ["a", "b"], "c2": ["a", "c"]})
    test = buys({"c1": ["a"], "c2": ["d"]})
    train = buys({"c1": ["a"], "c2": ["a"], "c3": ["b"]})  # a: 2 buyers, b: 1, c: 0; 3 train customers
    line = evaluate(recs, test, train=train, items=items, k=2, variants=("all",)).row(0, named=True)
    assert line["coverage"] == pytest.approx(3 / 4, abs=TOL)
    assert line["diversity"] == pytest.approx((1 / 2 + 2 / 2) / 2, abs=TOL)
    info = {"a": -math.log2(3 / 4), "b": -math.log2(2 / 4), "c": -math.log2(1 / 4)}
    expect = ((info["a"] + info["b"]) / 2 + (info["a"] + info["c"]) / 2) / 2
    assert line["novelty"] == pytest.approx(expect, abs=TOL)
    assert evaluate(recs, test, train=train, items=items, k=2, variants=("all",), n_catalogue=30)["coverage"][
        0
    ] == pytest.approx(0.1)
    no_train = evaluate(recs, test, k=2, variants=("all",)).row(0, named=True)
    assert no_train["novelty"] is None and no_train["coverage"] is None and no_train["diversity"] is None


def test_customers_argument_restricts() -> None:
    recs = recs_of({"c1": ["x"]})
    test = buys({"c1": ["x"], "c2": ["x"]})
    line = evaluate(recs, test, k=1, variants=("all",), customers={"c1"}).row(0, named=True)
    assert line["n_customers"] == 1 and line["map"] == 1.0


def test_served_list_rules() -> None:
    test = buys({"c1": ["x", "y"]})
    # padding dropped, ranks with gaps closed up, row order irrelevant
    recs = pl.DataFrame({"customer_id": ["c1"] * 3, "rank": [7, 2, 5], "item_id": ["y", "n", ""]})
    pc = per_customer_metrics(recs, test, k=2, variants=("all",))
    assert pc["ap"][0] == pytest.approx((1 / 2) / 2, abs=TOL)  # [n, y]: hit at position 2
    with pytest.raises(SchemaError, match="repeats an item"):
        evaluate(recs_of({"c1": ["x", "x"]}), test, variants=("all",))
    with pytest.raises(SchemaError, match="repeats an rank|repeats a"):
        evaluate(
            pl.DataFrame({"customer_id": ["c1", "c1"], "rank": [1, 1], "item_id": ["x", "y"]}),
            test,
            variants=("all",),
        )
    with pytest.raises(SchemaError, match="rank"):
        evaluate(pl.DataFrame({"customer_id": ["c1"], "item_id": ["x"]}), test, variants=("all",))
    with pytest.raises(ConfigError, match="'k'"):
        evaluate(recs, test, k=0, variants=("all",))
    with pytest.raises(ConfigError, match="variants"):
        evaluate(recs, test, variants=("everything",))


# --------------------------------------------------------------------------- groups
def test_evaluate_by_group_partitions_customers() -> None:
    recs = recs_of({"c1": ["x"], "c2": ["y"], "c3": ["x"]})
    test = buys({"c1": ["x"], "c2": ["x"], "c3": ["x"], "c4": ["x"]})
    groups = pl.DataFrame({"customer_id": ["c1", "c2", "c3", "c9"], "group": ["g1", "g1", "g2", "g3"]})
    out = evaluate_by_group(recs, test, groups, k=1, variants=("all",))
    assert out.columns == ["group", *METRIC_COLUMNS]
    assert out["group"].to_list() == ["g1", "g2", "g3", None]  # g3 has nobody active; c4 has no group
    by = {r["group"]: r for r in out.iter_rows(named=True)}
    assert by["g1"]["n_customers"] == 2 and by["g1"]["map"] == pytest.approx(0.5)
    assert by["g2"]["map"] == 1.0 and by["g3"]["n_customers"] == 0 and by["g3"]["map"] is None
    assert by[None]["n_customers"] == 1 and by[None]["n_without_recs"] == 1
    overall = evaluate(recs, test, k=1, variants=("all",)).row(0, named=True)
    assert out["n_customers"].sum() == overall["n_customers"]
    weighted = sum(r["map"] * r["n_customers"] for r in out.iter_rows(named=True) if r["n_customers"])
    assert weighted / overall["n_customers"] == pytest.approx(overall["map"], abs=TOL)
    with pytest.raises(SchemaError, match="more than once"):
        evaluate_by_group(recs, test, pl.concat([groups, groups]), variants=("all",))


def test_activity_tiers_and_cold_vs_known(tiny: Dataset) -> None:
    tiers = activity_tiers(tiny)
    got = dict(zip(tiers["customer_id"].to_list(), tiers["group"].cast(pl.String).to_list(), strict=True))
    assert got == {
        "c1": "2-4 orders",
        "c2": "1 order",
        "c3": "2-4 orders",
        "c4": "1 order",
        "c5": "2-4 orders",
        "c6": "1 order",
    }
    assert activity_tiers(tiny, edges=(1, 3))["group"].dtype == pl.Enum(["1-2 orders", "3+ orders"])
    with pytest.raises(ConfigError, match="edges"):
        activity_tiers(tiny, edges=(2, 5))
    split = temporal_split(tiny, cutoff=datetime(2025, 1, 5))
    cvk = cold_vs_known(split.test, split.train)
    # c5's first purchase is stamped exactly at the cut-off, so it belongs to test: c5 is cold
    assert dict(cvk.iter_rows()) == {"c1": "known", "c3": "known", "c5": "cold", "c6": "cold"}
    out = evaluate_by_group(recs_of({"c1": ["s1"]}), split.test, cvk, variants=("all",), k=1)
    assert out["group"].cast(pl.String).to_list() == ["known", "cold"]  # Enum order, not alphabetical
    assert out["n_customers"].to_list() == [2, 2]


def test_recommendations_frame_roundtrip_from_a_model(tiny: Dataset) -> None:
    split = temporal_split(tiny, cutoff=datetime(2025, 1, 5))
    customers = ["c1", "c3", "c5", "c6"]
    model = Popularity(half_life_days=None).fit(split.train)
    ids = model.recommend(customers, n=8, on_unknown="empty").ids
    recs = recommendations_frame(customers, ids)
    assert recs.columns == ["customer_id", "rank", "item_id"] and "" not in recs["item_id"].to_list()
    for c, row in zip(customers, ids, strict=True):
        served = recs.filter(pl.col("customer_id") == c).sort("rank")["item_id"].to_list()
        assert served == [i for i in row if i != ""]
    # an oracle list (exactly what each customer bought next) is perfect
    oracle = split.test.purchases.group_by("customer_id").agg(pl.col("item_id").unique().sort())
    oracle_recs = recommendations_frame(
        oracle["customer_id"].to_list(),
        np.array([row + [""] * (4 - len(row)) for row in oracle["item_id"].to_list()], dtype=object),
    )
    line = evaluate(oracle_recs, split.test, k=4, variants=("all",)).row(0, named=True)
    assert line["map"] == 1.0 and line["ndcg"] == pytest.approx(1.0) and line["recall"] == 1.0


def test_empty_inputs_give_nulls_not_crashes() -> None:
    empty_recs = recs_of({})
    out = evaluate(empty_recs, buys({}), variants=("all",))
    assert out.row(0, named=True)["n_customers"] == 0 and out.row(0, named=True)["map"] is None
    assert precision_recall_curve(empty_recs, buys({}), ks=(1, 2))["precision"].to_list() == [None, None]
    # test purchases but nothing served at all: every customer counts, all zero
    line = evaluate(empty_recs, buys({"c1": ["x"]}), variants=("all",)).row(0, named=True)
    assert (line["n_customers"], line["n_without_recs"], line["map"]) == (1, 1, 0.0)


def test_accepts_datasets_and_filters_to_purchases() -> None:
    t0 = datetime(2025, 1, 1)
    inter = pl.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2"],
            "item_id": ["x", "y", "y"],
            "ts": [t0, t0 + timedelta(days=1), t0],
            "event": ["purchase", "view", "view"],
        }
    )
    ds = Dataset(inter, pl.DataFrame({"item_id": ["x", "y"], "category": ["A", "B"]}))
    line = evaluate(recs_of({"c1": ["y", "x"]}), ds, k=2, variants=("all",)).row(0, named=True)
    assert line["n_customers"] == 1  # c2 only viewed: not active
    assert (
        line["map"] == pytest.approx(0.5, abs=TOL) and line["coverage"] == 1.0
    )  # catalogue from the Dataset


def test_activity_tiers_count_timestamps_when_order_id_missing() -> None:
    t0 = datetime(2025, 1, 1)
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b"],
            "item_id": ["x", "y", "x", "y", "x"],
            "ts": [t0, t0, t0 + timedelta(days=1), t0 + timedelta(days=2), t0],
            "order_id": [None, None, "o1", "o1", None],  # a: one id-less basket (2 lines) + order o1
        }
    )
    tiers = activity_tiers(frame, edges=(1, 2, 3))
    assert dict(tiers.select("customer_id", pl.col("group").cast(pl.String)).iter_rows()) == {
        "a": "2 orders",
        "b": "1 order",
    }

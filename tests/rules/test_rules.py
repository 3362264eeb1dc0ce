"""Business rules (recsys.rules): each rule proven to act on hand-made frames with known answers, the
fallback chain, validity windows, YAML errors, a property test, and a few checks on the synthetic shop."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recsys.exceptions import ConfigError, SchemaError
from recsys.rules import OUTPUT_COLUMNS, PlacementRules, RuleSet, apply_rules, load_placements

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 6, 15, 12, 0)

# item, category, price, in_stock, replenishable
CATALOGUE = [
    ("t1", "trousers", 50.0, True, False),
    ("t2", "trousers", 60.0, True, None),
    ("t3", "trousers", 80.0, True, None),
    ("t4", "trousers", 120.0, True, None),
    ("t5", "trousers", 200.0, False, None),
    ("b1", "belts", 20.0, True, None),
    ("b2", "belts", 25.0, True, None),
    ("b3", "belts", 30.0, True, None),
    ("s1", "shoes", 90.0, True, None),
    ("s2", "shoes", 100.0, True, None),
    ("k1", "socks", 5.0, True, True),
    ("k2", "socks", 6.0, True, None),
    ("h1", "hats", 15.0, True, None),
]
#: Global popularity, best first (t5 is popular but out of stock).
POPULAR = ["h1", "t5", "s1", "b1", "k1", "t3", "t2", "b2", "s2", "t1", "t4", "b3", "k2"]


@pytest.fixture()
def items() -> pl.DataFrame:
    return pl.DataFrame(
        CATALOGUE, schema={"item_id": pl.String, "category": pl.String, "price": pl.Float64,
                           "in_stock": pl.Boolean, "replenishable": pl.Boolean}, orient="row",
    )


@pytest.fixture()
def popular() -> pl.DataFrame:
    return pl.DataFrame({"item_id": POPULAR, "score": [float(len(POPULAR) - i) for i in range(len(POPULAR))]})


Cands = dict[str, list[tuple[str, float]]] | list[tuple[str, float]]


def ranked(rows: Cands, reason: str = "similar_items") -> pl.DataFrame:
    """Candidates ``{customer: [(item, score), …]}`` (a list means customer "c1")."""
    if isinstance(rows, list):
        rows = {"c1": rows}
    data = [(c, it, s, reason, "src", NOW - timedelta(days=3)) for c, lst in rows.items() for it, s in lst]
    return pl.DataFrame(
        data, orient="row",
        schema={"customer_id": pl.String, "item_id": pl.String, "score": pl.Float64, "reason_type": pl.String,
                "source_item_id": pl.String, "source_ts": pl.Datetime("us")},
    )


def history(rows: list[tuple[str, str, int, float | None]]) -> pl.DataFrame:
    """Purchases ``(customer, item, days before NOW, price paid)``."""
    return pl.DataFrame(
        [(c, it, NOW - timedelta(days=d), p) for c, it, d, p in rows], orient="row",
        schema={"customer_id": pl.String, "item_id": pl.String, "ts": pl.Datetime("us"), "price": pl.Float64},
    )


def run(cands, items, popular, n=5, hist=None, **rules) -> pl.DataFrame:
    call_args = ("replenish_due", "context_item_ids", "customer_ids", "now")
    kwargs = {k: rules.pop(k) for k in call_args if k in rules}
    kwargs.setdefault("now", NOW)
    return apply_rules(cands, n=n, rules=PlacementRules(**rules), catalogue=items, history=hist,
                       fallback=popular, **kwargs)


def ids(out: pl.DataFrame, customer: str = "c1") -> list[str]:
    return out.filter(pl.col("customer_id") == customer).sort("rank")["item_id"].to_list()


ALL = [("t1", 9.0), ("t2", 8.0), ("t3", 7.0), ("t4", 6.0), ("t5", 5.5), ("b1", 5.0), ("b2", 4.0), ("s1", 3.0),
       ("k1", 2.0), ("h1", 1.0)]


# ---------------------------------------------------------------------------------------------- basics
def test_no_rules_keeps_ranker_order_reasons_and_schema(items, popular):
    out = run(ranked(ALL), items, popular, n=4, in_stock_only=False)
    assert tuple(out.columns) == OUTPUT_COLUMNS
    assert out.columns == ["customer_id", "rank", "item_id", "score", "reason_type", "source_item_id",
                           "source_ts"]
    assert out.schema["rank"] == pl.Int32
    assert ids(out) == ["t1", "t2", "t3", "t4"]
    assert out["rank"].to_list() == [1, 2, 3, 4]
    assert out["score"].to_list() == [9.0, 8.0, 7.0, 6.0]
    assert set(out["reason_type"]) == {"similar_items"}
    assert set(out["source_item_id"]) == {"src"}
    assert out["source_ts"].to_list() == [NOW - timedelta(days=3)] * 4


def test_ties_are_broken_by_item_id_and_output_is_deterministic(items, popular):
    cands = ranked([("b2", 1.0), ("s1", 1.0), ("b1", 1.0), ("h1", 2.0)])
    first = run(cands, items, popular, n=4)
    assert ids(first) == ["h1", "b1", "b2", "s1"]
    assert first.equals(run(cands.reverse(), items, popular, n=4))


def test_duplicates_keep_the_best_row_once(items, popular):
    cands = pl.concat([ranked([("b1", 1.0), ("s1", 5.0)], reason="low"),
                       ranked([("b1", 9.0)], reason="high")])
    out = run(cands, items, popular, n=3, fallback=[])
    assert ids(out) == ["b1", "s1"]
    assert out.row(0, named=True)["reason_type"] == "high"
    assert out.row(0, named=True)["score"] == 9.0


def test_unknown_items_and_context_items_are_dropped(items, popular):
    cands = ranked([("nope", 99.0), ("t1", 5.0), ("b1", 4.0), ("s1", 3.0)])
    out = run(cands, items, popular, n=2, context_item_ids=["t1"])
    assert ids(out) == ["b1", "s1"]


# ---------------------------------------------------------------------------------------------- rule 1
def test_exclude_bought_days_respects_the_window(items, popular):
    hist = history([("c1", "t1", 10, 50.0), ("c1", "t2", 100, 60.0)])
    cands = ranked(ALL[:3])
    assert ids(run(cands, items, popular, n=3, hist=hist, fallback=[])) == ["t1", "t2", "t3"]
    out = run(cands, items, popular, n=3, hist=hist, exclude_bought_days=30, fallback=[])
    assert ids(out) == ["t2", "t3"]
    # 0 means "anything ever bought"; a very large window is the same
    assert ids(run(cands, items, popular, n=3, hist=hist, exclude_bought_days=0, fallback=[])) == ["t3"]
    assert ids(run(cands, items, popular, n=3, hist=hist, exclude_bought_days=10_000, fallback=[])) == ["t3"]


def test_exclude_bought_applies_to_fallback_and_to_each_customer_separately(items, popular):
    hist = history([("c1", "h1", 1, None), ("c2", "s1", 1, None)])
    out = run(ranked({"c1": [], "c2": []}), items, popular, n=2, hist=hist, exclude_bought_days=30,
              customer_ids=["c1", "c2"])
    assert ids(out, "c1") == ["s1", "b1"]  # h1 bought by c1; t5 out of stock
    assert ids(out, "c2") == ["h1", "b1"]


@pytest.mark.parametrize(
    ("item", "due", "shown"),
    [
        ("k1", True, True),    # replenishable and due: the exception
        ("k1", False, False),  # replenishable but not due
        ("k1", None, False),   # no replenish_due frame: never due
        ("t1", True, False),   # due, but the catalogue says not replenishable
        ("k2", True, True),    # replenishable unknown: the buy-again model's "due" decides
    ],
)
def test_replenishable_and_due_items_come_back(items, popular, item, due, shown):
    hist = history([("c1", item, 3, None)])
    due_frame = (None if due is None
                 else pl.DataFrame({"customer_id": ["c1"], "item_id": [item], "due": [due]}))
    out = run(ranked([(item, 9.0), ("h1", 1.0)]), items, popular, n=2, hist=hist, exclude_bought_days=30,
              replenish_due=due_frame, fallback=[])
    assert (item in ids(out)) is shown


# ---------------------------------------------------------------------------------------------- rule 2
def test_in_stock_only(items, popular):
    cands = ranked([("t5", 9.0), ("t1", 1.0)])
    assert ids(run(cands, items, popular, n=2, fallback=[])) == ["t1"]
    assert ids(run(cands, items, popular, n=2, fallback=[], in_stock_only=False)) == ["t5", "t1"]


# ---------------------------------------------------------------------------------------------- rule 3
def test_max_per_category_caps_the_final_list(items, popular):
    out = run(ranked(ALL), items, popular, n=5, max_per_category=2)
    assert ids(out) == ["t1", "t2", "b1", "b2", "s1"]


# ---------------------------------------------------------------------------------------------- rule 4
def test_round_robin_interleaves_categories_by_their_best_item(items, popular):
    out = run(ranked(ALL), items, popular, n=8, diversity="round_robin")
    assert ids(out) == ["t1", "b1", "s1", "k1", "h1", "t2", "b2", "t3"]


def test_mmr_lambda_trades_relevance_for_novelty(items, popular):
    cands = ranked([("t1", 1.0), ("t2", 0.9), ("b1", 0.0)])
    assert ids(run(cands, items, popular, n=3, diversity="mmr", mmr_lambda=0.5)) == ["t1", "b1", "t2"]
    assert ids(run(cands, items, popular, n=3, diversity="mmr", mmr_lambda=0.9)) == ["t1", "t2", "b1"]
    # lambda 0: every new category first (in score order), then the rest in score order
    out = run(ranked(ALL), items, popular, n=7, diversity="mmr", mmr_lambda=0.0)
    assert ids(out) == ["t1", "b1", "s1", "k1", "h1", "t2", "t3"]


# ---------------------------------------------------------------------------------------------- rule 5
def test_upsell_band_around_the_context_item(items, popular):
    band = {"enabled": True, "min_ratio": 1.0, "max_ratio": 2.0}
    out = run(ranked(ALL), items, popular, n=2, upsell=band, context_item_ids=["t2"])
    assert ids(out) == ["t3", "t4"]  # trousers priced 60..120, t2 itself excluded
    assert ids(run(ranked(ALL), items, popular, n=2, context_item_ids=["t2"])) == ["t1", "t3"]


def test_upsell_band_around_the_last_purchase_per_category(items, popular):
    # trousers: last paid 50 (older purchase at 80 ignored) → 50..100; belts: paid 12 (on sale) → 12..24
    hist = history([("c1", "t3", 200, 80.0), ("c1", "t1", 20, 50.0), ("c1", "b1", 5, 12.0)])
    band = {"enabled": True, "min_ratio": 1.0, "max_ratio": 2.0}
    out = run(ranked(ALL), items, popular, n=4, hist=hist, upsell=band, fallback=[])
    assert ids(out) == ["t1", "t2", "t3", "b1"]
    # a customer with no reference price at all is not filtered
    out = run(ranked({"c9": ALL[:3]}), items, popular, n=3, hist=hist, upsell=band, fallback=[])
    assert ids(out, "c9") == ["t1", "t2", "t3"]


# ---------------------------------------------------------------------------------------------- rule 6
def test_include_and_exclude_categories(items, popular):
    out = run(ranked(ALL), items, popular, n=3, include_categories=["belts", "socks"])
    assert ids(out) == ["b1", "b2", "k1"]
    out = run(ranked(ALL), items, popular, n=3, exclude_categories=["trousers"])
    assert ids(out) == ["b1", "b2", "s1"]


# ---------------------------------------------------------------------------------------------- rule 7
def test_boost_acts_only_inside_its_validity_window(items, popular):
    rule = {"categories": ["hats"], "factor": 10.0,
            "valid_from": date(2025, 6, 1), "valid_to": date(2025, 6, 15)}
    cands = ranked(ALL)
    assert ids(run(cands, items, popular, n=2, boost=[rule]))[0] == "h1"  # 1.0 × 10 beats 9.0
    out = run(cands, items, popular, n=2, boost=[rule])
    assert out.filter(pl.col("item_id") == "h1")["score"].item() == 10.0
    assert ids(run(cands, items, popular, n=2, boost=[rule], now=datetime(2025, 6, 16)))[0] == "t1"  # expired
    assert ids(run(cands, items, popular, n=2, boost=[rule], now=datetime(2025, 5, 31)))[0] == "t1"  # not yet


def test_boost_moves_negative_scores_up_too(items, popular):
    cands = ranked([("t1", -1.0), ("b1", -4.0)])
    out = run(cands, items, popular, n=2, boost=[{"item_ids": ["b1"], "factor": 5.0}])
    assert ids(out) == ["b1", "t1"]  # -4 / 5 = -0.8 > -1


def test_pin_takes_its_position_while_valid(items, popular):
    pin = {"item_id": "s2", "position": 2,
           "valid_from": datetime(2025, 6, 10), "valid_to": datetime(2025, 6, 20)}
    out = run(ranked(ALL), items, popular, n=4, pin=[pin])
    assert ids(out) == ["t1", "s2", "t2", "t3"]
    row = out.filter(pl.col("item_id") == "s2").row(0, named=True)
    assert (row["rank"], row["reason_type"], row["source_item_id"]) == (2, "pinned", None)
    for outside in (datetime(2025, 6, 21), datetime(2025, 6, 9)):
        assert ids(run(ranked(ALL), items, popular, n=4, pin=[pin], now=outside)) == ["t1", "t2", "t3", "t4"]


def test_pins_respect_hard_rules_collisions_and_list_length(items, popular):
    pins = [
        {"item_id": "b3", "position": 1},
        {"item_id": "s2", "position": 1},  # same slot: goes to the next free one
        {"item_id": "t5", "position": 3},  # out of stock: skipped
        {"item_id": "h1", "position": 9},  # beyond n: not shown
        {"item_id": "t1", "position": 4},  # a candidate pinned: not duplicated, keeps its score
    ]
    out = run(ranked(ALL), items, popular, n=4, pin=pins)
    assert ids(out) == ["b3", "s2", "t2", "t1"]
    assert out["reason_type"].to_list() == ["pinned", "pinned", "similar_items", "pinned"]
    assert out["score"].to_list()[3] == 9.0 and out["score"].to_list()[0] is None


def test_block_acts_only_inside_its_validity_window(items, popular):
    block = [{"categories": ["trousers"], "item_ids": ["h1"],
              "valid_from": date(2025, 6, 1), "valid_to": date(2025, 6, 30)}]
    out = run(ranked(ALL), items, popular, n=10, block=block)
    assert not set(ids(out)) & {"t1", "t2", "t3", "t4", "h1"}
    assert sorted(ids(out)) == ["b1", "b2", "b3", "k1", "k2", "s1", "s2"]  # all that is left
    for outside in (datetime(2025, 7, 1), datetime(2025, 5, 31, 23, 59)):
        assert ids(run(ranked(ALL), items, popular, n=3, block=block, now=outside)) == ["t1", "t2", "t3"]


def test_validity_window_bounds_are_inclusive():
    rule = PlacementRules(block=[{"item_ids": ["x"], "valid_from": datetime(2025, 1, 1, 9),
                                  "valid_to": date(2025, 1, 2)}])
    entry = rule.block[0]
    assert entry.active(datetime(2025, 1, 1, 9))
    assert entry.active(datetime(2025, 1, 2, 23, 59, 59))  # a bare date covers its whole day
    assert not entry.active(datetime(2025, 1, 3))
    assert not entry.active(datetime(2025, 1, 1, 8, 59))


# ---------------------------------------------------------------------------------------------- rule 8
def test_fallback_fills_from_customer_categories_then_popular(items, popular):
    # Two candidates, n=7: trousers and belts by popularity first (t5 out of stock), then global popular.
    out = run(ranked([("t1", 2.0), ("b1", 1.0)]), items, popular, n=7)
    assert ids(out) == ["t1", "b1", "t3", "t2", "b2", "t4", "b3"]
    assert out["reason_type"].to_list() == ["similar_items"] * 2 + ["trending_in_category"] * 5
    out = run(ranked([("t1", 2.0), ("b1", 1.0)]), items, popular, n=10)
    assert ids(out)[7:] == ["h1", "s1", "k1"]
    assert out["reason_type"].to_list()[7:] == ["popular"] * 3
    assert out.filter(pl.col("item_id") == "h1")["score"].item() == float(len(POPULAR))


def test_rules_removing_almost_everything_still_yield_n(items, popular):
    # Bought: all trousers and b1; hats blocked; one per category → only b2, b3, s1, s2, k1, k2 remain.
    hist = history([("c1", it, 1, None) for it, _ in ALL[:6]])
    out = run(ranked(ALL), items, popular, n=5, hist=hist, exclude_bought_days=0, max_per_category=1,
              block=[{"categories": ["hats"]}])
    assert out["rank"].to_list() == [1, 2, 3, 4, 5]
    # surviving candidates one per category, then the cap is relaxed over popular items of their categories
    assert ids(out) == ["b2", "s1", "k1", "s2", "b3"]
    assert out["reason_type"].to_list() == ["similar_items"] * 3 + ["trending_in_category"] * 2
    # one more slot than there are eligible items: everything eligible, no error
    out = run(ranked(ALL), items, popular, n=7, hist=hist, exclude_bought_days=0, max_per_category=1,
              block=[{"categories": ["hats"]}])
    assert sorted(ids(out)) == ["b2", "b3", "k1", "k2", "s1", "s2"]


def test_fallback_order_is_configurable(items, popular):
    out = run(ranked([("t1", 2.0)]), items, popular, n=3, fallback=["popular"])
    assert ids(out) == ["t1", "h1", "s1"]
    assert ids(run(ranked([("t1", 2.0)]), items, popular, n=3, fallback=[])) == ["t1"]


def test_soft_rules_are_relaxed_last_hard_rules_never(items, popular):
    # Only one hat exists: include_categories cannot fill 4 slots, so the list is completed without it.
    out = run(ranked(ALL), items, popular, n=4, include_categories=["hats"], exclude_categories=["shoes"])
    assert ids(out) == ["h1", "t1", "t2", "t3"]
    assert "s1" not in ids(run(ranked(ALL), items, popular, n=12, include_categories=["hats"],
                                exclude_categories=["shoes"]))
    # the cap is relaxed only after the fallback could not satisfy it
    out = run(ranked([("t1", 3.0), ("t2", 2.0), ("t3", 1.0)]), items, popular, n=4, max_per_category=1,
              include_categories=["trousers"])
    assert ids(out) == ["t1", "t2", "t3", "t4"]


def test_upsell_band_is_relaxed_before_the_category_cap(items, popular):
    band = {"enabled": True, "min_ratio": 1.0, "max_ratio": 2.0}
    out = run(ranked(ALL), items, popular, n=4, upsell=band, max_per_category=1, context_item_ids=["t2"])
    assert ids(out) == ["t3", "b1", "s1", "k1"]  # only t3 is in the band; the cap still holds after


def test_empty_ranked_gives_pure_popular(items, popular):
    out = run(ranked({}), items, popular, n=3, customer_ids=["new"])
    assert ids(out, "new") == ["h1", "s1", "b1"]
    assert set(out["reason_type"]) == {"popular"}
    assert run(ranked({}), items, popular, n=3).height == 0  # no customers asked for: nothing to do


def test_customers_without_candidates_get_fallback_next_to_others(items, popular):
    out = run(ranked({"c1": ALL[:2]}), items, popular, n=2, customer_ids=["c0"])
    assert out["customer_id"].to_list() == ["c0", "c0", "c1", "c1"]
    assert ids(out, "c0") == ["h1", "s1"] and ids(out, "c1") == ["t1", "t2"]


def test_small_catalogue_returns_everything_eligible_without_error(items, popular):
    small = items.filter(pl.col("item_id").is_in(["t1", "t5", "b1"]))
    popular = popular.filter(pl.col("item_id") != "t1")
    out = run(ranked([("t1", 1.0)]), small, popular, n=12, customer_ids=["c2"])
    assert sorted(ids(out)) == ["b1", "t1"]
    assert ids(out, "c2") == ["b1", "t1"]  # b1 popular; t1 has no popularity, comes last
    assert out.filter(pl.col("item_id") == "t1", pl.col("customer_id") == "c2")["score"].item() is None


def test_fallback_without_popularity_walks_the_catalogue(items):
    out = apply_rules(ranked({}), n=3, rules=PlacementRules(), catalogue=items, now=NOW, customer_ids=["c1"])
    assert ids(out) == ["b1", "b2", "b3"]


# ---------------------------------------------------------------------------------------------- rule 9
def test_ranks_contiguous_and_no_duplicates_across_customers(items, popular):
    rng = np.random.default_rng(3)
    cands = ranked({f"c{i}": [(CATALOGUE[j][0], float(rng.random())) for j in rng.integers(0, 13, 20)]
                    for i in range(6)})
    out = run(cands, items, popular, n=8, max_per_category=2, diversity="mmr",
              pin=[{"item_id": "s2", "position": 3}])
    per = out.group_by("customer_id").agg(pl.col("rank"), pl.col("item_id").n_unique().alias("u"), pl.len())
    assert per["len"].to_list() == [8] * 6 and per["u"].to_list() == [8] * 6
    assert all(r == list(range(1, 9)) for r in per["rank"].to_list())


# ---------------------------------------------------------------------------------------------- API edges
def test_parameter_and_schema_errors_name_the_problem(items, popular):
    with pytest.raises(ConfigError, match="'n' parameter"):
        run(ranked(ALL), items, popular, n=-1)
    with pytest.raises(SchemaError, match="'score'"):
        apply_rules(ranked(ALL).drop("score"), rules=PlacementRules(), catalogue=items, now=NOW)
    assert run(ranked(ALL), items, popular, n=0).height == 0


def test_minimal_ranked_columns_and_float32_scores(items, popular):
    cands = ranked(ALL[:2]).select("customer_id", "item_id", pl.col("score").cast(pl.Float32))
    out = run(cands, items, popular, n=3)
    assert out.schema["score"] == pl.Float32
    assert out["reason_type"].to_list() == ["ranked", "ranked", "trending_in_category"]


def test_names_missing_from_the_catalogue_are_reported(items, popular, caplog):
    rules = PlacementRules(include_categories=["trouser"], pin=[{"item_id": "zz-test-only", "position": 1}])
    with caplog.at_level("WARNING", logger="recsys.rules._engine"):
        rs = RuleSet(rules, items, popular)
        RuleSet(rules, items, popular)
    assert rs.unknown_names_ == {"categories": ["trouser"], "item_ids": ["zz-test-only"]}
    assert caplog.text.count("trouser") == 1  # once per process, not per request
    assert RuleSet(PlacementRules(include_categories=["hats"]), items, popular).unknown_names_ == {}


def test_ruleset_is_reusable_and_shared_index_agrees(items, popular):
    placements = {"a": PlacementRules(max_per_category=1), "b": PlacementRules(diversity="round_robin")}
    shared = RuleSet.for_placements(placements, items, popular)
    for name, rules in placements.items():
        alone = RuleSet(rules, items, popular).apply(ranked(ALL), n=5, now=NOW)
        assert shared[name].apply(ranked(ALL), n=5, now=NOW).equals(alone)
        assert shared[name].apply(ranked(ALL), n=5, now=NOW).equals(alone)  # no state leaks between calls


def test_aware_now_and_history_with_other_events(items, popular):
    from datetime import timezone

    hist = history([("c1", "t1", 1, None)]).with_columns(pl.lit("view").alias("event"))
    out = run(ranked(ALL[:2]), items, popular, n=2, hist=hist, exclude_bought_days=30,
              now=NOW.replace(tzinfo=timezone.utc))
    assert ids(out) == ["t1", "t2"]  # a view is not a purchase


# ---------------------------------------------------------------------------------------------- YAML
def test_example_placements_config_loads():
    placements = load_placements(ROOT / "configs" / "placements.yaml")
    assert {"product_page", "cart", "home", "for_you", "email"} <= set(placements)
    assert placements["email"].upsell.enabled and placements["email"].exclude_bought_days == 0
    assert placements["cart"].block[0].item_ids == ["I00013"]  # merged from the shared anchor


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("placements:\n  for_you:\n    max_per_categroy: 2\n", "placements.for_you.max_per_categroy"),
        ("placements:\n  cart:\n    diversity: shuffle\n", "placements.cart.diversity"),
        ("placements:\n  cart:\n    upsell: {enabled: true, min_ratio: 2, max_ratio: 1}\n",
         "placements.cart.upsell"),
        ("placements:\n  home:\n    pin: [{item_id: x, position: 0}]\n", "placements.home.pin.0.position"),
        ("placements:\n  home:\n    boost: [{factor: 2}]\n", "placements.home.boost.0"),
        ("placements:\n  home:\n    block: [{item_ids: [x], valid_from: 2025-02-01, valid_to: 2025-01-01}]\n",
         "placements.home.block.0"),
        ("placements:\n  email:\n    exclude_bought_days: -3\n", "placements.email.exclude_bought_days"),
        ("placement:\n  email: {}\n", "placement"),
    ],
)
def test_yaml_errors_name_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_placements(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_yaml_missing_or_unparseable(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_placements(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("placements: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_placements(tmp_path / "broken.yaml")


# ---------------------------------------------------------------------------------------------- property
ITEM_IDS = [row[0] for row in CATALOGUE] + ["ghost"]
CATS = sorted({row[1] for row in CATALOGUE})

rules_strategy = st.fixed_dictionaries(
    {},
    optional={
        "exclude_bought_days": st.none() | st.integers(0, 60),
        "in_stock_only": st.booleans(),
        "max_per_category": st.none() | st.integers(1, 3),
        "diversity": st.sampled_from(["none", "round_robin", "mmr"]),
        "mmr_lambda": st.floats(0, 1),
        "upsell": st.builds(dict, enabled=st.booleans(), min_ratio=st.floats(0, 1.5),
                            max_ratio=st.floats(1.5, 3)),
        "include_categories": st.lists(st.sampled_from(CATS[:3]), max_size=2, unique=True),
        "exclude_categories": st.lists(st.sampled_from(CATS[3:]), max_size=2, unique=True),
        "block": st.lists(
            st.builds(dict, item_ids=st.lists(st.sampled_from(ITEM_IDS), min_size=1, max_size=3),
                      valid_from=st.none() | st.sampled_from([date(2025, 6, 1), date(2025, 6, 16)])),
            max_size=2,
        ),
        "pin": st.lists(st.builds(dict, item_id=st.sampled_from(ITEM_IDS), position=st.integers(1, 8)),
                        max_size=3),
        "boost": st.lists(st.builds(dict, categories=st.lists(st.sampled_from(CATS), min_size=1, max_size=2),
                                    factor=st.floats(0.1, 10)), max_size=2),
    },
)
candidates_strategy = st.lists(
    st.tuples(st.sampled_from(["c1", "c2", "c3"]), st.sampled_from(ITEM_IDS),
              st.floats(allow_nan=True, allow_infinity=True, width=32)),
    max_size=40,
)
history_strategy = st.lists(
    st.tuples(st.sampled_from(["c1", "c2", "c4"]), st.sampled_from(ITEM_IDS), st.integers(0, 90),
              st.none() | st.floats(1, 300)),
    max_size=15,
)


def _eligible(items: pl.DataFrame, rules: PlacementRules, hist: pl.DataFrame, customer: str,
              context: list[str], due: set[tuple[str, str]]) -> set[str]:
    """Brute-force hard rules for one customer (the reference the engine must agree with)."""
    blocked = {i for b in rules.block if b.active(NOW) for i in b.item_ids}
    bought: set[str] = set()
    if rules.exclude_bought_days is not None:
        window = hist.filter(pl.col("customer_id") == customer)
        if rules.exclude_bought_days > 0:
            window = window.filter(pl.col("ts") >= NOW - timedelta(days=rules.exclude_bought_days))
        replen = dict(zip(items["item_id"], items["replenishable"]))
        bought = {i for i in window["item_id"] if not ((customer, i) in due and replen.get(i) is not False)}
    return {
        r["item_id"] for r in items.iter_rows(named=True)
        if (r["in_stock"] or not rules.in_stock_only) and r["item_id"] not in blocked
        and r["category"] not in rules.exclude_categories
        and r["item_id"] not in bought and r["item_id"] not in context
    }


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=rules_strategy, cands=candidates_strategy, hist_rows=history_strategy, n=st.integers(1, 14),
       context=st.lists(st.sampled_from(ITEM_IDS), max_size=2), due_rows=st.lists(
           st.tuples(st.sampled_from(["c1", "c2"]), st.sampled_from(ITEM_IDS)), max_size=3))
@example(rules={}, cands=[], hist_rows=[], n=5, context=[], due_rows=[])
@example(rules={"exclude_bought_days": 0, "max_per_category": 1}, cands=[], hist_rows=[], n=14, context=[],
         due_rows=[])
def test_property_n_rows_when_possible_and_hard_rules_hold(
    items, popular, rules, cands, hist_rows, n, context, due_rows
):
    placement = PlacementRules(**rules)
    frame = pl.DataFrame(cands, schema={"customer_id": pl.String, "item_id": pl.String, "score": pl.Float32},
                         orient="row")
    hist = history(hist_rows)
    due = pl.DataFrame(due_rows, schema={"customer_id": pl.String, "item_id": pl.String}, orient="row")
    due = due.with_columns(pl.lit(True).alias("due"))
    out = RuleSet(placement, items, popular).apply(frame, n=n, now=NOW, history=hist, replenish_due=due,
                                                   context_item_ids=context, customer_ids=["c9"])
    customers = set(frame["customer_id"]) | {"c9"}
    assert set(out["customer_id"]) <= customers
    for customer in customers:
        got = ids(out, customer)
        allowed = _eligible(items, placement, hist, customer, context, set(due_rows))
        assert len(got) == len(set(got)) == min(n, len(allowed)), (customer, got, allowed)
        assert set(got) <= allowed
        ranks = out.filter(pl.col("customer_id") == customer)["rank"].to_list()
        assert sorted(ranks) == list(range(1, len(got) + 1))


# ------------------------------------------------------------------------------------------ synthetic shop
@pytest.fixture(scope="module")
def shop():
    from recsys.data.synthetic import generate_shop

    return generate_shop(seed=0)


@pytest.fixture(scope="module")
def shop_inputs(shop):
    ds = shop.dataset
    purchases = ds.purchases
    now = datetime(2025, 12, 1)
    past = purchases.filter(pl.col("ts") < now)
    popular = past.group_by("item_id").len().select("item_id", pl.col("len").cast(pl.Float64).alias("score"))
    rng = np.random.default_rng(7)
    customers = sorted(past["customer_id"].unique().to_list())[:300]
    item_ids = ds.items["item_id"].to_numpy()
    rows = [(c, str(item_ids[j]), float(s)) for c in customers
            for j, s in zip(rng.choice(len(item_ids), 60, replace=False), rng.random(60))]
    cands = pl.DataFrame(rows, schema={"customer_id": pl.String, "item_id": pl.String, "score": pl.Float64},
                         orient="row")
    hist = past.filter(pl.col("customer_id").is_in(customers))
    return ds, cands, hist, popular, now, customers


@pytest.mark.parametrize("placement", ["product_page", "cart", "home", "for_you", "email"])
def test_example_placements_on_the_synthetic_shop(shop_inputs, placement):
    ds, cands, hist, popular, now, customers = shop_inputs
    rules = load_placements(ROOT / "configs" / "placements.yaml")[placement]
    out = RuleSet(rules, ds.items, popular).apply(cands, n=12, now=now, history=hist)
    assert out.group_by("customer_id").len()["len"].to_list() == [12] * len(customers)
    joined = out.join(ds.items.select("item_id", "category", "in_stock"), on="item_id", how="left")
    assert joined["in_stock"].all()
    assert "I00013" not in out["item_id"].to_list()  # the shop-wide block
    if rules.max_per_category:
        worst = joined.group_by("customer_id", "category").len()["len"].max()
        assert worst <= rules.max_per_category
    if rules.exclude_bought_days is not None:
        days = rules.exclude_bought_days
        cutoff = now - timedelta(days=days) if days else datetime(1900, 1, 1)
        recent = hist.filter(pl.col("ts") >= cutoff).select("customer_id", "item_id").unique()
        assert out.join(recent, on=["customer_id", "item_id"], how="semi").height == 0


def test_batch_equals_per_customer_on_the_synthetic_shop(shop_inputs):
    ds, cands, hist, popular, now, customers = shop_inputs
    rules = PlacementRules(exclude_bought_days=60, max_per_category=2, diversity="mmr",
                           upsell={"enabled": True, "min_ratio": 0.5, "max_ratio": 3.0},
                           pin=[{"item_id": "I00100", "position": 4}])
    rs = RuleSet(rules, ds.items, popular)
    batch = rs.apply(cands, n=12, now=now, history=hist, customer_ids=["C999999"])
    assert batch["customer_id"].n_unique() == len(customers) + 1
    for c in customers[:40] + ["C999999"]:
        one = rs.apply(cands.filter(pl.col("customer_id") == c), n=12, now=now,
                       history=hist.filter(pl.col("customer_id") == c), customer_ids=[c])
        assert one.equals(batch.filter(pl.col("customer_id") == c)), c


def test_batch_path_with_large_frames_matches_small_path(shop_inputs, monkeypatch):
    """Above the size threshold ids are mapped by polars joins; the answer must not change."""
    import recsys.rules._frames as frames

    ds, cands, hist, popular, now, customers = shop_inputs
    rs = RuleSet(PlacementRules(exclude_bought_days=30, diversity="round_robin"), ds.items, popular)
    small = rs.apply(cands, n=12, now=now, history=hist)
    monkeypatch.setattr(frames, "SMALL", 10)
    assert rs.apply(cands, n=12, now=now, history=hist).equals(small)
    monkeypatch.setattr(frames, "SMALL", 10**9)
    assert rs.apply(cands, n=12, now=now, history=hist).equals(small)


def test_one_ruleset_serves_concurrent_requests(shop_inputs):
    from concurrent.futures import ThreadPoolExecutor

    ds, cands, hist, popular, now, customers = shop_inputs
    rules = PlacementRules(exclude_bought_days=30, max_per_category=2, diversity="mmr")
    rs = RuleSet(rules, ds.items, popular)
    frames = {c: (cands.filter(pl.col("customer_id") == c), hist.filter(pl.col("customer_id") == c))
              for c in customers[:24]}

    def request(c: str) -> pl.DataFrame:
        return rs.apply(frames[c][0], n=12, now=now, history=frames[c][1])

    expected = {c: request(c) for c in frames}
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so shared per-list state would be caught
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            got = list(pool.map(request, list(frames) * 12))
    finally:
        sys.setswitchinterval(interval)
    assert all(g.equals(expected[c]) for g, c in zip(got, list(frames) * 12))


# ------------------------------------------------------------------------------ first tier for many customers
@pytest.mark.parametrize("diversity", ["none", "round_robin"])
@pytest.mark.parametrize("cap", [None, 1, 2])
@pytest.mark.parametrize("upsell", [False, True])
def test_batch_first_tier_gives_the_walks_lists(shop_inputs, monkeypatch, diversity, cap, upsell):
    """Hundreds of customers take the array path for the first tier (``first_tier``); forcing every
    customer through the Python walk must give the same frame, short lists (fallback, relaxation) included."""
    import recsys.rules._engine as engine

    ds, cands, hist, popular, now, customers = shop_inputs
    rules = PlacementRules(exclude_bought_days=0, max_per_category=cap, diversity=diversity,
                           include_categories=["trousers", "shoes", "belts", "socks"] if cap == 1 else [],
                           upsell={"enabled": upsell, "min_ratio": 0.8, "max_ratio": 1.5})
    rs = RuleSet(rules, ds.items, popular)
    thin = cands.filter(pl.col("score") > 0.7)  # ~18 candidates each: some lists need the fallback
    fast = rs.apply(thin, n=8, now=now, history=hist, customer_ids=["C999999"])
    assert len(customers) >= engine.BATCH_FIRST_TIER
    monkeypatch.setattr(engine, "BATCH_FIRST_TIER", 10**9)
    walked = rs.apply(thin, n=8, now=now, history=hist, customer_ids=["C999999"])
    assert fast.equals(walked)
    reasons = set(fast["reason_type"])
    assert "ranked" in reasons and reasons - {"ranked"}  # both paths were taken


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=rules_strategy, cands=candidates_strategy, hist_rows=history_strategy, n=st.integers(1, 14))
@example(rules={"diversity": "round_robin", "max_per_category": 1},
         cands=[("c1", "t1", 1.0), ("c1", "t2", 0.5), ("c1", "b1", 0.7)], hist_rows=[], n=2)
def test_property_first_tier_equals_the_walk(items, popular, rules, cands, hist_rows, n):
    import recsys.rules._engine as engine

    rs = RuleSet(PlacementRules(**rules), items, popular)
    frame = pl.DataFrame(cands, schema={"customer_id": pl.String, "item_id": pl.String, "score": pl.Float32},
                         orient="row")
    kw = {"n": n, "now": NOW, "history": history(hist_rows), "customer_ids": ["c9"]}
    saved = engine.BATCH_FIRST_TIER
    try:
        engine.BATCH_FIRST_TIER = 1
        fast = rs.apply(frame, **kw)
        engine.BATCH_FIRST_TIER = 10**9
        walked = rs.apply(frame, **kw)
    finally:
        engine.BATCH_FIRST_TIER = saved
    assert fast.equals(walked)


def test_apply_codes_equals_apply_and_rejects_codes_out_of_range(items, popular):
    """The integer entry point (batch jobs holding catalogue codes) gives ``apply``'s lists; a code past
    the catalogue or the customer list is an error naming the column, not a silent wrong answer."""
    rules = PlacementRules(exclude_bought_days=0, max_per_category=1, upsell={"enabled": True})
    rs = RuleSet(rules, items, popular)
    # t1 was bought (hard rule), t4 is priced outside the band around the 55 paid for t1 (soft rule):
    # both read the coded history
    cands = ranked({"c1": [("t1", 0.99), ("t4", 0.95), ("t2", 0.9), ("t3", 0.8), ("b1", 0.7), ("s1", 0.4)],
                    "c2": [("s2", 0.5), ("h1", 0.3)]})
    hist = history([("c1", "t1", 3, 55.0), ("c2", "k1", 1, None)])
    position = {item: i for i, item in enumerate(items["item_id"])}
    customers = ["c1", "c2", "c3"]

    def coded(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(
            pl.col("customer_id").replace_strict({c: i for i, c in enumerate(customers)},
                                                 return_dtype=pl.Int32).alias("_c"),
            pl.col("item_id").replace_strict(position, return_dtype=pl.Int32).alias("_i"))

    expected = rs.apply(cands, n=3, now=NOW, history=hist, customer_ids=customers)
    got = rs.apply_codes(coded(cands).drop("customer_id", "item_id"), customers, n=3, now=NOW,
                         history=coded(hist).drop("customer_id", "item_id"))
    assert got.equals(expected)
    assert ids(got, "c1") == ["t2", "b1", "s1"] and len(ids(got, "c3")) == 3
    with pytest.raises(SchemaError, match="'_c' must be in"):
        rs.apply_codes(coded(cands).with_columns(pl.lit(7, pl.Int32).alias("_c")), customers, n=3, now=NOW)
    with pytest.raises(SchemaError, match="missing required column '_i'"):
        rs.apply_codes(coded(cands).drop("_i"), customers, n=3, now=NOW)

"""TIFU-KNN: the paper's vector on a hand-computed example, the neighbour blend, fold-in that touches
nothing global, erasure, persistence and explanations.  (Shapes, determinism and save/load of the
contract are in ``test_models_contract.py``.)
"""

from __future__ import annotations

import tracemalloc
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from recsys.dataset import Dataset
from recsys.exceptions import ConfigError, UnknownIdError
from recsys.models import _tifu
from recsys.models.tifu_knn import TIFUKNN
from recsys.ranking._candidates import collect_candidates, widen

T0 = datetime(2025, 1, 1)


def _dataset(rows: list[tuple[str, str, int, str | None]], items: list[str] | None = None) -> Dataset:
    inter = pl.DataFrame(
        {"customer_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
         "ts": [T0 + timedelta(days=r[2]) for r in rows], "order_id": [r[3] for r in rows]},
        schema={"customer_id": pl.String, "item_id": pl.String, "ts": pl.Datetime("us"), "order_id": pl.String},
    )
    names = items or sorted({r[1] for r in rows})
    return Dataset(inter, pl.DataFrame({"item_id": names, "category": ["x"] * len(names)}), source="test")


def _events(rows: list[tuple[str, str, int, str | None]]) -> pl.DataFrame:
    return _dataset(rows).interactions


@pytest.fixture(scope="module")
def crowd() -> Dataset:
    """400 customers with 1–12 baskets of 1–4 of 60 items, random but seeded."""
    rng = np.random.default_rng(3)
    rows = []
    for c in range(400):
        for b in range(int(rng.integers(1, 13))):
            day = 3 * b + int(rng.integers(0, 3))
            for item in rng.choice(60, size=int(rng.integers(1, 5)), replace=False):
                rows.append((f"c{c:03d}", f"i{item:02d}", day, f"o{c}-{b}"))
    return _dataset(rows, [f"i{i:02d}" for i in range(60)])


# ------------------------------------------------------------------------------------ the vector
def test_vector_matches_the_paper_by_hand() -> None:
    """Baskets [a], [a, b], [c] (oldest first), groups of 2, both decays 0.5: newest group = {[c], [a, b]},
    oldest = {[a]}.  c = 1/2 · 1/2 = 0.25; a, b from [a, b] = 0.5/2 · 1/2 = 0.125; a from [a] =
    1/1 · 0.5 / 2 = 0.25, so a = 0.375."""
    ds = _dataset([("u", "a", 0, "o1"), ("u", "a", 1, "o2"), ("u", "b", 1, "o2"), ("u", "c", 2, "o3")])
    m = TIFUKNN(group_size=2, within_decay=0.5, group_decay=0.5, alpha=1.0).fit(ds)
    ids, scores = m.recommend("u", n=3)
    assert list(ids) == ["a", "c", "b"]
    np.testing.assert_allclose(scores, [0.375, 0.25, 0.125], rtol=1e-6)


def test_lines_without_order_id_make_one_basket_per_day() -> None:
    ds = _dataset([("u", "a", 0, None), ("u", "b", 0, None), ("u", "a", 5, None)])
    m = TIFUKNN(group_size=7, within_decay=0.5, alpha=1.0).fit(ds)
    assert np.diff(m.baskets_.bk_indptr).tolist() == [2]
    ids, scores = m.recommend("u", n=2)  # a: (1 + 0.5) / 2, b: 0.5 / 2
    assert list(ids) == ["a", "b"]
    np.testing.assert_allclose(scores, [0.75, 0.25], rtol=1e-6)


def test_alpha_zero_is_the_mean_of_the_nearest_customers() -> None:
    ds = _dataset([("u", "a", 0, "o1"), ("v", "a", 0, "o2"), ("v", "b", 0, "o2"),
                   ("w", "c", 0, "o3"), ("w", "d", 0, "o3"), ("w", "e", 0, "o3")])
    m = TIFUKNN(n_neighbors=1, alpha=0.0).fit(ds)
    # Euclidean: |u - v|² = 1, |u - w|² = 4 → u's one neighbour is v
    ids, scores = m.recommend("u", n=3)
    assert list(ids[:2]) == ["a", "b"] and ids[2] == ""
    np.testing.assert_allclose(scores[:2], [1.0, 1.0])
    cos = TIFUKNN(n_neighbors=2, alpha=0.0, metric="cosine").fit(ds)
    assert set(cos.recommend("u", n=3).ids) == {"a", "b", ""}  # w shares nothing: no cosine neighbour


def test_block_size_does_not_change_anything(crowd: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = TIFUKNN(n_neighbors=20).fit(crowd)
    customers = ref.customer_ids_.ids[:50]
    monkeypatch.setattr(_tifu, "BLOCK_CELLS", 300)
    import recsys.models.tifu_knn as module

    monkeypatch.setattr(module, "BLOCK_CELLS", 300)
    small = TIFUKNN(n_neighbors=20).fit(crowd)
    np.testing.assert_array_equal(ref.neighbours_, small.neighbours_)
    a, b = ref.recommend(customers, n=15), small.recommend(customers, n=15)
    assert (a.ids == b.ids).all()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


@pytest.mark.parametrize("exclude_bought", [False, True])
def test_sparse_and_dense_scoring_routes_agree(crowd: Dataset, monkeypatch: pytest.MonkeyPatch,
                                               exclude_bought: bool) -> None:
    """The route is picked by the scores' density (dense on this small catalogue, sparse at shop
    scale); forced either way, the lists and scores are the same bit for bit."""
    import recsys.models.tifu_knn as module

    model = TIFUKNN(n_neighbors=20).fit(crowd)
    customers = model.customer_ids_.ids[:80]
    monkeypatch.setattr(module, "_DENSE_SHARE", 0.0)  # always dense
    dense = model.recommend(customers, n=15, exclude_bought=exclude_bought)
    monkeypatch.setattr(module, "_DENSE_SHARE", 2.0)  # always sparse
    sparse = model.recommend(customers, n=15, exclude_bought=exclude_bought)
    assert (dense.ids == sparse.ids).all()
    np.testing.assert_array_equal(dense.scores, sparse.scores)


def test_neighbour_pool_and_items_bound_the_work(crowd: Dataset) -> None:
    m = TIFUKNN(n_neighbors=10, neighbor_pool=50, neighbor_items=2).fit(crowd)
    assert len(m.pool_) == 50 and set(m.neighbours_.ravel()) - {-1} <= set(m.pool_.tolist())
    assert np.diff(m._neighbour_matrix().indptr).max() <= 2


def test_neighbours_searched_on_query_are_the_fitted_ones(crowd: Dataset, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``search_neighbours="on_query"`` (a ranker window asks about a sample of customers; the served
    H&M bundle): only the customers asked about are searched, their lists and answers equal the eager
    fit's, and save, erasure and fold-in keep the others unsearched — answers still equal the eager's."""
    eager = TIFUKNN(n_neighbors=12).fit(crowd)
    lazy = TIFUKNN(n_neighbors=12, search_neighbours="on_query").fit(crowd)
    assert (lazy.neighbours_ == -2).all()  # nothing searched yet
    asked = eager.customer_ids_.ids[[3, 40, 41, 200]]
    a, b = eager.recommend(asked, n=10), lazy.recommend(asked, n=10)
    assert (a.ids == b.ids).all()
    np.testing.assert_array_equal(a.scores, b.scores)
    searched = np.flatnonzero(lazy.neighbours_[:, 0] != -2)
    assert searched.tolist() == [3, 40, 41, 200]
    np.testing.assert_array_equal(lazy.neighbours_[searched], eager.neighbours_[searched])
    loaded = TIFUKNN.load(lazy.save(tmp_path / "lazy"))
    np.testing.assert_array_equal(loaded.neighbours_[searched], eager.neighbours_[searched])
    assert (loaded.neighbours_[[0, 1, 2]] == -2).all()  # still to be searched
    everyone = eager.customer_ids_.ids
    a, b = eager.recommend(everyone, n=10), loaded.recommend(everyone, n=10)
    assert (a.ids == b.ids).all()
    np.testing.assert_array_equal(loaded.neighbours_, eager.neighbours_)
    fresh = TIFUKNN(n_neighbors=12, search_neighbours="on_query").fit(crowd)
    assert "neighbour_pos" not in fresh._state()[0] and "neighbours" not in fresh._state()[0]  # nothing to store
    fresh.recommend(everyone[:5], n=10)
    erased = fresh.forget(["c010"])
    assert (erased.neighbours_[10:20] == -2).all()  # erasure searched nobody it did not have to
    eager_erased = TIFUKNN(n_neighbors=12).fit(crowd).forget(["c010"])
    rest = eager_erased.customer_ids_.ids
    a, b = eager_erased.recommend(rest, n=10), erased.recommend(rest, n=10)
    assert (a.ids == b.ids).all()
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(erased.neighbours_, eager_erased.neighbours_)


@pytest.mark.parametrize("name, value", [("group_size", 0), ("within_decay", 1.5), ("group_decay", 0.0),
                                         ("n_neighbors", 0), ("alpha", -0.1), ("metric", "manhattan"),
                                         ("neighbor_pool", 0), ("neighbor_items", 2.5),
                                         ("search_neighbours", "later")])
def test_bad_parameters_name_themselves(tiny: Dataset, name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"'{name}' parameter of TIFUKNN"):
        TIFUKNN(**{name: value}).fit(tiny)


# --------------------------------------------------------------------------------------- fold-in
def test_fold_in_equals_a_refit_for_that_customer(crowd: Dataset) -> None:
    new = [("c007", "i01", 60, "n1"), ("c007", "i02", 60, "n1"), ("c007", "i59", 61, "n2")]
    folded = TIFUKNN(n_neighbors=15).fit(crowd).partial_fit(_events(new))
    refit = TIFUKNN(n_neighbors=15).fit(crowd.with_interactions(
        pl.concat([crowd.interactions, _events(new)])))
    a, b = folded.recommend("c007", n=20), refit.recommend("c007", n=20)
    assert list(a.ids) == list(b.ids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


def test_an_order_arriving_line_by_line_is_one_basket(crowd: Dataset) -> None:
    lines = [("c001", "i03", 60, "live"), ("c001", "i04", 60, "live"), ("c001", "i05", 60, "live")]
    one_by_one = TIFUKNN().fit(crowd)
    for line in lines:
        one_by_one.partial_fit(_events([line]))
    at_once = TIFUKNN().fit(crowd).partial_fit(_events(lines))
    row = one_by_one.customer_ids_.get("c001")
    assert len(one_by_one._overlay[row].baskets) == len(at_once._overlay[row].baskets)
    assert one_by_one.recommend("c001", n=10).ids.tolist() == at_once.recommend("c001", n=10).ids.tolist()


def test_fold_in_touches_no_base_array_and_allocates_little() -> None:
    """One new basket in a model of 10k customers: no base array is written (they are read-only
    here, so any in-place write would raise) or replaced, and the peak allocation is a small
    fraction of the base arrays — the fold-in costs that customer's history and one pool pass."""
    rng = np.random.default_rng(0)
    n_cust, per = 10_000, 6
    c = pl.Series(np.repeat(np.arange(n_cust), per)).cast(pl.String)
    order = pl.Series(rng.integers(0, 3, n_cust * per)).cast(pl.String)
    inter = pl.DataFrame({
        "customer_id": "c" + c, "item_id": "i" + pl.Series(rng.integers(0, 500, n_cust * per)).cast(pl.String),
        "ts": pl.Series(rng.integers(0, 90, n_cust * per) * 86_400_000_000).cast(pl.Datetime("us")),
        "order_id": "o" + c + "-" + order,
    })
    items = pl.DataFrame({"item_id": [f"i{x}" for x in range(500)], "category": ["x"] * 500})
    m = TIFUKNN(n_neighbors=50, neighbor_pool=1_000).fit(Dataset(inter, items, source="big"))
    m.recommend("c1", n=5)  # build the lazy caches (matrix, pool) the way a serving model has them
    m.partial_fit(_events([("c1", "i1", 200, "warm")]))  # the first fold-in may build the pool's arrays
    names = ["vec_indptr_", "vec_items_", "vec_w_", "vec_last_", "neighbours_", "pool_", "last_key_"]
    base = {n: getattr(m, n) for n in names}
    base |= {f"baskets.{n}": getattr(m.baskets_, n) for n in ("bk_indptr", "bk_ts", "ln_indptr", "ln_items")}
    for arr in base.values():
        arr.flags.writeable = False
    base_bytes = sum(a.nbytes for a in base.values())
    tracemalloc.start()
    m.partial_fit(_events([("c42", "i7", 200, "new-order"), ("c42", "i8", 200, "new-order")]))
    m.partial_fit(_events([("someone-new", "i9", 201, "first")]))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert all(getattr(m, n) is base[n] for n in names)
    assert m.baskets_.bk_ts is base["baskets.bk_ts"]
    assert peak < base_bytes / 20, (peak, base_bytes)
    assert "i7" in set(m.recommend("c42", n=10).ids) and m.recommend("someone-new", n=3).ids[0] == "i9"


def test_overlay_merges_past_one_percent_without_changing_answers(crowd: Dataset) -> None:
    m = TIFUKNN(n_neighbors=10).fit(crowd)
    events = _events([(f"c{c:03d}", f"i{c % 60:02d}", 90, f"late{c}") for c in range(0, 60, 2)]
                     + [("brand-new", "i05", 91, "x")])
    m.partial_fit(events)
    assert len(m._overlay) == 31  # below the merge threshold (64): still an overlay
    customers = ["c000", "c001", "c002", "brand-new"]
    before = m.recommend(customers, n=12)
    m._merge()
    assert not m._overlay and "brand-new" in m.customer_ids_
    after = m.recommend(customers, n=12)
    assert (before.ids == after.ids).all()
    np.testing.assert_allclose(before.scores, after.scores, rtol=1e-5)
    m.partial_fit(_events([(f"c{c:03d}", "i00", 95, f"later{c}") for c in range(100)]))
    assert not m._overlay  # 100 folded customers > 64: merged on the way out


def test_save_after_fold_in_keeps_it(crowd: Dataset, tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = TIFUKNN(n_neighbors=10).fit(crowd).partial_fit(_events([("new", "i10", 90, "z"), ("c003", "i11", 90, "y")]))
    want = m.recommend(["new", "c003"], n=8)
    got = TIFUKNN.load(m.save(tmp_path / "m")).recommend(["new", "c003"], n=8)
    assert (want.ids == got.ids).all()
    np.testing.assert_allclose(want.scores, got.scores, rtol=1e-5)


def test_forget_erases_the_customer_everywhere(crowd: Dataset) -> None:
    m = TIFUKNN(n_neighbors=30).fit(crowd).partial_fit(_events([("c010", "i00", 90, "z")]))
    erased = {"c010", "c020"}
    m.forget(sorted(erased))
    with pytest.raises(UnknownIdError):
        m.recommend("c010", n=3)
    ids = m.customer_ids_.ids
    assert not erased & set(ids)
    assert not erased & {ids[r] for r in m.neighbours_.ravel() if r >= 0}
    assert not erased & {ids[r] for r in m.pool_}
    assert m.recommend("c011", n=5).ids.shape == (5,)



def test_forget_and_fold_in_commute_and_keep_k_neighbours(crowd: Dataset) -> None:
    """Erasing a customer who is someone's neighbour, and folding in a new buyer, in either order: the
    same neighbour lists (k long: those who lost a neighbour search again) and the same answers.  Two
    service workers meeting an erasure and a purchase in different orders once answered differently."""
    buyer = _events([("new", "i01", 90, "z"), ("new", "i02", 90, "z")])
    probe = TIFUKNN(n_neighbors=5).fit(crowd).partial_fit(buyer)
    nb = probe._neighbours(probe._customer_rows(np.array(["new"], dtype=object)))[0]
    victim = str(probe.customer_ids_.ids[nb[0]])  # the buyer's nearest neighbour
    a = TIFUKNN(n_neighbors=5).fit(crowd).forget([victim]).partial_fit(buyer)
    b = TIFUKNN(n_neighbors=5).fit(crowd).partial_fit(buyer).forget([victim])
    assert a.knows(["new"]).all() and b.knows(["new"]).all()  # folded in, merged or not
    ra, rb = a.recommend(["new", "c011"], n=8), b.recommend(["new", "c011"], n=8)
    assert (ra.ids == rb.ids).all()
    np.testing.assert_allclose(ra.scores, rb.scores, rtol=1e-6)
    assert (b.neighbours_ >= 0).sum(axis=1).min() == 5


# ------------------------------------------------------------------------------------ explanations
def test_own_items_are_buy_again_and_the_rest_similar_customers(crowd: Dataset) -> None:
    m = TIFUKNN(n_neighbors=10).fit(crowd)
    frame = m.recommend_with_sources(["c005", "c006"], n=30)
    bought = crowd.purchases.group_by("customer_id", "item_id").agg(pl.col("ts").max().alias("last"))
    joined = frame.join(bought, on=["customer_id", "item_id"], how="left")
    own = joined.filter(pl.col("last").is_not_null())
    other = joined.filter(pl.col("last").is_null())
    assert own.height and other.height
    assert set(own["reason_type"]) == {"buy_again"} and (own["source_item_id"] == own["item_id"]).all()
    assert (own["source_ts"] == own["last"]).all()
    assert set(other["reason_type"]) == {"similar_customers"}
    assert other["source_item_id"].is_null().all() and other["source_ts"].is_null().all()
    e = m.explain_arrays(["c005", "c006"], n=30)
    assert e.item_id.tolist() == frame["item_id"].to_list() and e.reason.tolist() == frame["reason_type"].to_list()


def test_candidates_carry_the_per_item_reason(crowd: Dataset) -> None:
    gens = {"tifu_knn": TIFUKNN(n_neighbors=10).fit(crowd)}
    long = collect_candidates(gens, ["c005"], 30)
    wide = widen(long, ["tifu_knn"], {"tifu_knn": TIFUKNN.reason})
    mine = set(crowd.purchases.filter(pl.col("customer_id") == "c005")["item_id"])
    for item, reason, source in wide.select("item_id", "reason_type", "source_item_id").iter_rows():
        assert (reason, source) == (("buy_again", item) if item in mine else ("similar_customers", None))


def test_views_for_the_parameter_search_share_the_fit(crowd: Dataset) -> None:
    wide = TIFUKNN(n_neighbors=30, alpha=0.7).fit(crowd)
    view = wide.with_blend(n_neighbors=10, alpha=0.4)
    direct = TIFUKNN(n_neighbors=10, alpha=0.4).fit(crowd)
    a, b = view.recommend(["c001", "c002"], n=10), direct.recommend(["c001", "c002"], n=10)
    assert (a.ids == b.ids).all()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    other = TIFUKNN(group_size=3, n_neighbors=30).refit_like(wide)
    np.testing.assert_array_equal(other.recommend("c003", n=5).ids,
                                  TIFUKNN(group_size=3, n_neighbors=30).fit(crowd).recommend("c003", n=5).ids)
    with pytest.raises(ConfigError, match="n_neighbors"):
        wide.with_blend(n_neighbors=31, alpha=0.5)


def test_a_merge_after_fold_in_keeps_the_unsearched_unsearched(crowd: Dataset) -> None:
    """A service folding events into an on-query model merges its overlay without searching the shop."""
    events = _events([("c005", "i07", 60, "o-new"), ("newbie", "i03", 60, "o-nb"), ("newbie", "i09", 60, "o-nb")])
    eager = TIFUKNN(n_neighbors=12).fit(crowd).partial_fit(events)
    lazy = TIFUKNN(n_neighbors=12, search_neighbours="on_query").fit(crowd).partial_fit(events)
    eager._merge()
    lazy._merge()
    assert (lazy.neighbours_[lazy.customer_ids_.get("c100")] == -2).all()
    everyone = eager.customer_ids_.ids
    a, b = eager.recommend(everyone, n=10), lazy.recommend(everyone, n=10)
    assert (a.ids == b.ids).all()
    np.testing.assert_array_equal(a.scores, b.scores)

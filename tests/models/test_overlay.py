"""Per-customer overlays: same answers as rebuilding, and a fold-in touches only the event's customers."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.synthetic import generate_shop
from recsys.dataset import Dataset
from recsys.idmap import IdMap
from recsys.models.buy_again import BuyAgain
from recsys.models.category_affinity import CategoryAffinity
from recsys.models.category_complements import CategoryComplements
from recsys.models.copurchase import CoPurchase
from recsys.models.popularity import Popularity
from recsys.models._overlay import OverlayCSR, RowTable
from recsys.models.implicit_cf import ALS, ItemKNN

# ----------------------------------------------------------------------------------------- RowTable
_ops = st.lists(st.tuples(st.integers(0, 30), st.lists(st.integers(0, 99), max_size=5)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(base=st.lists(st.lists(st.integers(0, 99), max_size=4), max_size=12), ops=_ops,
       query=st.lists(st.integers(-1, 35), max_size=15))
def test_row_table_reads_like_a_dict_of_rows(base: list[list[int]], ops: list, query: list[int]) -> None:
    ref = {r: list(v) for r, v in enumerate(base)}
    indptr = np.concatenate([[0], np.cumsum([len(v) for v in base])]).astype(np.int64)
    flat = np.array([x for v in base for x in v], dtype=np.int64)
    t = RowTable(indptr, {"v": flat, "w": flat * 2.0})
    for row, values in ops:
        t.set(row, {"v": np.array(values, np.int64), "w": np.array(values, float) * 2})
        ref[row] = list(values)
    for table in (t, _compacted(t)):
        local, cols = table.gather(np.array(query, dtype=np.int64))
        want = [(k, x) for k, r in enumerate(query) for x in ref.get(r, [])]
        assert list(zip(local.tolist(), cols["v"].tolist(), strict=True)) == want
        np.testing.assert_array_equal(cols["w"], cols["v"] * 2.0)


def _compacted(t: RowTable) -> RowTable:
    copy = RowTable(t.indptr, t.columns, t.n_rows)
    copy._over = dict(t._over)
    copy.compact()
    assert copy.n_overlay == 0
    return copy


def test_row_table_compacts_after_one_percent_and_erases_rows() -> None:
    n = 10_000
    t = RowTable(np.arange(n + 1, dtype=np.int64), {"v": np.arange(n, dtype=np.int64)})
    base_col = t.columns["v"]
    for r in range(100):
        t.set(r, {"v": np.array([r, r])})
    assert t.columns["v"] is base_col and t.n_overlay == 100  # one event = no copy of the base
    t.set(100, {"v": np.array([7])})  # 101 > 1 % of 10,000: merged
    assert t.n_overlay == 0 and len(t.columns["v"]) == n + 100  # rows 0-99 grew by one
    t.keep_rows(np.array([0, 100, 5000]))
    local, cols = t.gather(np.array([0, 1, 2]))
    assert local.tolist() == [0, 0, 1, 2] and cols["v"].tolist() == [0, 0, 7, 5000]


@settings(max_examples=40, deadline=None)
@given(adds=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 7), st.integers(1, 3)), max_size=30),
       how=st.sampled_from(["sum", "or"]))
def test_overlay_csr_equals_scipy(adds: list[tuple[int, int, int]], how: str) -> None:
    rng = np.random.default_rng(0)
    base = sp.random(6, 8, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    m = OverlayCSR(base)
    ref = base.toarray().astype(np.float64)
    ref = np.vstack([ref, np.zeros((7, 8))])
    for r, c, v in adds:
        m.add(np.array([r]), np.array([c]), np.array([float(v)]), how=how)
        ref[r, c] = 1.0 if how == "or" else ref[r, c] + v
    if how == "or":
        ref[:6][base.toarray() > 0] = np.where(
            np.isin(np.arange(6), [r for r, _, _ in adds])[:, None] & (base.toarray() > 0), 1.0,
            base.toarray())[base.toarray() > 0]
    rows = np.arange(m.shape[0])
    np.testing.assert_allclose(m[rows].toarray(), ref[: m.shape[0]], rtol=1e-6)
    np.testing.assert_allclose(m.tocsr().toarray(), ref[: m.shape[0]], rtol=1e-6)


# --------------------------------------------------------------------------------------- IdMap
@settings(max_examples=60, deadline=None)
@given(start=st.lists(st.text("ab", min_size=1, max_size=3), unique=True, max_size=5),
       steps=st.lists(st.tuples(st.integers(0, 5), st.lists(st.text("abc", min_size=1, max_size=4), max_size=4)),
                      max_size=8))
def test_idmap_extend_chains_and_branches_stay_independent(start: list[str], steps: list) -> None:
    maps, refs = [IdMap(start)], [list(start)]
    for parent, keys in steps:  # extend any earlier map, not only the newest: branches must not leak
        k = parent % len(maps)
        new = maps[k].extend(keys)
        ref = list(refs[k]) + [x for x in dict.fromkeys(keys) if x not in refs[k]]
        maps.append(new)
        refs.append(ref)
    for m, ref in zip(maps, refs, strict=True):
        assert m.ids.tolist() == ref and len(m) == len(ref)
        assert m.index([*ref, "zzz"]).tolist() == [*range(len(ref)), -1]
        assert all(x in m for x in ref) and "zzz" not in m


# ------------------------------------------------------------------------------------- generators
@pytest.fixture(scope="module")
def shop() -> Dataset:
    return generate_shop(seed=3, n_customers=300).dataset


GENERATORS = [BuyAgain, CoPurchase, CategoryComplements, CategoryAffinity, Popularity, ALS, ItemKNN]


def _events(data: Dataset) -> list[pl.DataFrame]:
    p = data.purchases
    when = p["ts"].max() + timedelta(hours=2)
    customers = p["customer_id"].unique().sort().to_list()
    items = data.items["item_id"].to_list()
    rows = [(customers[3], items[5]), (customers[3], items[6]), ("NEW-A", items[1]), (customers[40], items[2]),
            ("NEW-B", items[9]), ("NEW-A", items[11])]
    return [pl.DataFrame({"customer_id": [c], "item_id": [i], "ts": [when + timedelta(minutes=k)],
                          "quantity": [1.0], "order_id": [f"o{k}"], "event": ["purchase"]},
                         schema_overrides={"quantity": pl.Float32})
            for k, (c, i) in enumerate(rows)]


def _params(cls: type) -> dict:
    return {"random_state": 0, "iterations": 3, "factors": 8} if cls is ALS else {}


@pytest.mark.parametrize("cls", GENERATORS, ids=lambda c: c.__name__)
def test_fold_in_one_event_at_a_time_equals_all_at_once_and_a_reload(cls: type, shop: Dataset, tmp_path) -> None:
    events = _events(shop)
    one = cls(**_params(cls)).fit(shop)
    for ev in events:
        one.partial_fit(ev)
    together = cls(**_params(cls)).fit(shop).partial_fit(pl.concat(events))
    one.save(tmp_path / "m")
    reloaded = cls.load(tmp_path / "m")  # saving merges every overlay into the base arrays
    customers = ["NEW-A", "NEW-B", *shop.purchases["customer_id"].unique().sort().head(60).to_list()]
    a = one.recommend(customers, 10, on_unknown="empty")
    for other in (together, reloaded):
        b = other.recommend(customers, 10, on_unknown="empty")
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


@pytest.mark.parametrize("cls", [BuyAgain, CoPurchase, CategoryComplements, CategoryAffinity, Popularity, ALS],
                         ids=lambda c: c.__name__)
def test_fold_in_leaves_every_other_customers_arrays_alone(cls: type, shop: Dataset) -> None:
    """The O(event) promise: no per-customer base array is copied or rebuilt by one event."""
    model = cls(**_params(cls)).fit(shop)

    def base_arrays() -> list[int]:
        found = []
        for value in vars(model).values():
            table = getattr(value, "_t", value)
            if isinstance(table, RowTable):
                found += [id(table.indptr), *(id(c) for c in table.columns.values())]
        return found

    before = base_arrays()
    assert before, f"{cls.__name__} keeps no per-customer RowTable/OverlayCSR state"
    for ev in _events(shop)[:3]:
        model.partial_fit(ev)
    assert base_arrays() == before

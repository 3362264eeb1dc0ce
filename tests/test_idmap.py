"""IdMap: the id ↔ index contract, on both the small (dict) and large (join) lookup paths."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from recsys.idmap import IdMap

ids = st.lists(st.text(alphabet="abcxyz019", min_size=1, max_size=4), unique=True, max_size=30)


@given(ids, st.lists(st.text(alphabet="abcxyz019", min_size=1, max_size=4), max_size=30))
@example([], [])
def test_index_roundtrip_and_unknown(known: list[str], queries: list[str]) -> None:
    m = IdMap(known)
    idx = m.index(queries)
    assert idx.shape == (len(queries),)
    for q, i in zip(queries, idx, strict=True):
        assert (i == -1) == (q not in known)
        if i >= 0:
            assert m.ids[i] == q


def test_large_lookup_path_matches_small() -> None:
    m = IdMap([f"id{i}" for i in range(10_000)])
    keys = [f"id{i}" for i in range(0, 20_000, 3)]
    big = m.index(keys)
    small = np.array([m.get(k) for k in keys])
    np.testing.assert_array_equal(big, small)


def test_extend_keeps_existing_indices() -> None:
    m = IdMap(["a", "b"])
    m2 = m.extend(["c", "a", "d", "c"])
    assert m2.index(["a", "b", "c", "d"]).tolist() == [0, 1, 2, 3]
    assert m.extend(["a"]) is m


def test_maps_of_one_shared_array_are_one_map_and_fold_in_the_same_customer_without_copying() -> None:
    import numpy as np

    ids = np.array([f"c{i}" for i in range(1000)])
    ids.flags.writeable = False  # as ``recsys.models._shared`` hands it to every generator
    a, b = IdMap.of_saved(ids), IdMap.of_saved(ids)
    assert a is b
    a2, b2 = a.extend(["new"]), b.extend(["new"])  # two generators folding in one new customer
    assert b2._buf is a2._buf and a2.get("new") == b2.get("new") == 1000 and "new" not in a
    c2 = b.extend(["other"])  # a different id branches off with its own copy
    assert c2.get("other") == 1000 and "other" not in a2 and a2.get("new") == 1000
    writable = np.array(["x", "y"])
    assert IdMap.of_saved(writable) is not IdMap.of_saved(writable)


def test_generators_fitted_on_one_shop_share_their_customer_map() -> None:
    """``sorted_ids`` hands out the map a model still holds when the ids are equal (one dict of every
    customer per run, not one per generator), and a new one when they differ."""
    import polars as pl

    from recsys.models._util import sorted_ids

    a = sorted_ids(pl.Series(["c2", "c1", "c2"]))
    b = sorted_ids(pl.Series(["c1", "c2"]))
    assert a is b and list(a.ids) == ["c1", "c2"]
    c = sorted_ids(pl.Series(["c1", "c3"]))
    assert c is not a and list(c.ids) == ["c1", "c3"]
    assert sorted_ids(pl.Series(["c1"]), pl.Series(["c2"])) is a

"""``recsys._arrays``: the shared numpy passes give exactly their slow, obvious equivalents."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from recsys._arrays import in_sorted, row_score_order, unique_inverse, unique_sorted

_scores = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.5, 1e-30, -3.25, 7.0])


@st.composite
def _triples(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    n_rows = draw(st.integers(1, 6))
    n_cols = draw(st.integers(1, 9))
    n = draw(st.integers(0, 40))
    rows = np.array(draw(st.lists(st.integers(0, n_rows - 1), min_size=n, max_size=n)), dtype=np.int64)
    cols = np.array(draw(st.lists(st.integers(0, n_cols - 1), min_size=n, max_size=n)), dtype=np.int64)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    scores = np.array(draw(st.lists(_scores, min_size=n, max_size=n)), dtype=dtype)
    return rows, scores, cols, n_rows, n_cols


@settings(max_examples=300, deadline=None)
@given(_triples())
@example((np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64), 1, 1))
def test_row_score_order_is_the_lexsort(t: tuple[np.ndarray, np.ndarray, np.ndarray, int, int]) -> None:
    """Repeated (row, column) pairs, -0.0, and float64 scores included: the same order exactly."""
    rows, scores, cols, n_rows, n_cols = t
    np.testing.assert_array_equal(row_score_order(rows, scores, cols, n_rows, n_cols),
                                  np.lexsort((cols, -scores, rows)))


def test_row_score_order_falls_back_where_it_cannot_pack() -> None:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 3, 500)
    cols = rng.integers(0, 2**31, 500)  # too wide to pack with the rows
    scores = rng.random(500)  # float64 that float32 would round: ties must not appear
    for s in (scores, scores.astype(np.float32), np.r_[scores[:-1], np.inf]):
        np.testing.assert_array_equal(row_score_order(rows, s, cols, 3, 2**31), np.lexsort((cols, -s, rows)))
        small = cols % 1000
        np.testing.assert_array_equal(row_score_order(rows, s, small, 3, 1000), np.lexsort((small, -s, rows)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-5, 5), max_size=30), st.lists(st.integers(-7, 7), max_size=30))
def test_unique_and_in_sorted(keys: list[int], values: list[int]) -> None:
    u = unique_sorted(np.array(keys, dtype=np.int64))
    np.testing.assert_array_equal(u, np.unique(np.array(keys, dtype=np.int64)))
    np.testing.assert_array_equal(in_sorted(np.array(values, dtype=np.int64), u), np.isin(values, u))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-5, 5), max_size=30))
def test_unique_inverse_is_numpys(keys: list[int]) -> None:
    arr = np.array(keys, dtype=np.int64)
    u, inv = unique_inverse(arr)
    nu, ninv = np.unique(arr, return_inverse=True)
    np.testing.assert_array_equal(u, nu)
    np.testing.assert_array_equal(inv, ninv.reshape(-1))

"""``top_n`` and ``sparse_top_n`` return exactly the sorted prefix (value desc, index asc), ties included.

Why it matters: the per-request path asks generators for one customer and the batch path for
thousands; with ties at the k-th place (common: counts, planted structure) both must pick the same items.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recsys.models._implicit_util import sparse_top_n
from recsys.models.base import top_n

_scores = st.integers(1, 5).flatmap(
    lambda b: st.integers(1, 30).flatmap(
        lambda n: arrays(np.float32, (b, n), elements=st.sampled_from([-np.inf, 0.5, 1.0, 2.0, 3.0]))
    )
)


def _reference(row: np.ndarray, k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]


@settings(max_examples=300, deadline=None)
@given(scores=_scores, k=st.integers(1, 35))
def test_top_n_is_the_sorted_prefix(scores: np.ndarray, k: int) -> None:
    idx, val = top_n(scores, k)
    for b in range(scores.shape[0]):
        want = _reference(scores[b], min(k, scores.shape[1]))
        assert idx[b].tolist() == want
        assert val[b].tolist() == scores[b, want].tolist()


@settings(max_examples=300, deadline=None)
@given(scores=_scores, k=st.integers(1, 35))
def test_sparse_top_n_agrees_with_dense(scores: np.ndarray, k: int) -> None:
    """Stored entries only (absent = not a candidate), same order as the dense path's finite entries."""
    finite = np.where(np.isfinite(scores), scores, 0.0)
    idx, val = sparse_top_n(sp.csr_matrix(finite), k)
    dense_idx, dense_val = top_n(np.where(finite > 0, finite, -np.inf), k)
    dense_idx[~np.isfinite(dense_val)] = -1
    k_eff = min(k, scores.shape[1])
    assert idx[:, :k_eff].tolist() == dense_idx.tolist()


def test_single_customer_sparse_path_equals_batch_dense_path(synthetic_bundle_dir) -> None:  # type: ignore[no-untyped-def]
    """Item-KNN and co-purchase score one customer through the sparse product and a batch through dense
    blocks: the lists must be identical, with and without bought items."""
    from recsys.bundle import Bundle
    from recsys.models._implicit_util import SPARSE_ROWS

    h = Bundle.load(synthetic_bundle_dir).hybrid
    customers = h.history.customers.ids[: 3 * SPARSE_ROWS].astype(object)
    for name in ("item_knn", "copurchase"):
        gen = h.generators[name]
        for exclude in (False, True):
            batch_ids, batch_scores = gen.recommend(customers, 25, exclude_bought=exclude)
            for r, c in enumerate(customers):
                ids, scores = gen.recommend([c], 25, exclude_bought=exclude)
                assert ids[0].tolist() == batch_ids[r].tolist(), (name, exclude, c)
                np.testing.assert_allclose(scores[0], batch_scores[r], rtol=1e-6)


@pytest.mark.parametrize("exclude_bought", [False, True])
def test_neighbourhood_scorer_dense_and_sparse_routes_agree(exclude_bought: bool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The shop-scale sparse route and the deep-history dense route give identical lists."""
    import scipy.sparse as sp

    from recsys.models import _implicit_util as util

    rng = np.random.default_rng(3)
    items = 400
    history = sp.random(300, items, density=0.02, random_state=3, format="csr", dtype=np.float32)
    history.data = np.round(history.data * 4, 1) + 0.1  # ties on purpose
    neighbours = sp.random(items, items, density=0.03, random_state=4, format="csr", dtype=np.float32)
    neighbours.data = np.round(neighbours.data * 3 - 0.5, 1)  # some negative, some zero
    keep = np.ones(300, dtype=np.float32)
    keep[rng.integers(0, 300, 20)] = 0  # customers with no history
    history = sp.diags(keep) @ history
    history.eliminate_zeros()
    monkeypatch.setattr(util, "_DENSE_SHARE", 0.0)
    dense = util.neighbourhood_top_n(history, neighbours, 25, exclude_bought=exclude_bought, dense_cells=5000)
    monkeypatch.setattr(util, "_DENSE_SHARE", 10.0)
    monkeypatch.setattr(util, "_SPARSE_ENTRIES", 700)  # several sparse chunks
    sparse = util.neighbourhood_top_n(history, neighbours, 25, exclude_bought=exclude_bought, dense_cells=5000)
    np.testing.assert_array_equal(dense[0], sparse[0])
    np.testing.assert_array_equal(dense[1], sparse[1])
    assert (dense[0] >= 0).sum() > 1000  # the comparison covers real lists


def test_sparse_top_n_pruning_long_rows_keeps_exactly_the_sorted_prefix(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Long rows (TIFU-KNN's ~5k neighbour items per customer) are pruned to the entries at least their
    row's n-th largest before the sort — ties with the n-th stay, so the lists equal the full sort's."""
    import scipy.sparse as sp

    from recsys.models import _implicit_util as util

    m = sp.random(120, 3000, density=0.2, random_state=5, format="lil", dtype=np.float32)
    m[7, :] = 0  # an empty row
    m[8, 10:] = 0  # and a short one
    m = m.tocsr()
    m.data = np.round(m.data * 5, 0) + 1  # few distinct values: many ties at every rank
    m.eliminate_zeros()
    monkeypatch.setattr(util, "_PRUNE_FACTOR", 10**9)
    full = sparse_top_n(m, 30)
    monkeypatch.setattr(util, "_PRUNE_FACTOR", 1)
    monkeypatch.setattr(util, "_PRUNE_CELLS", 5000)  # many padded blocks
    pruned = sparse_top_n(m, 30)
    np.testing.assert_array_equal(full[0], pruned[0])
    np.testing.assert_array_equal(full[1], pruned[1])
    assert (full[0] >= 0).sum() > 3000

"""One contract, many models: every generator must pass these (habit 1 of STYLE.md).

Generators register in ``GENERATORS`` with a factory; each test runs against every one.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.dataset import Dataset
from recsys.exceptions import ConfigError, NotFittedError, UnknownIdError
from recsys.models import Popularity
from recsys.models.base import PAD_ID, Recommender

GENERATORS: dict[str, type[Recommender]] = {
    "popularity": Popularity,
}


def _extra_generators() -> None:
    """Every concrete ``Recommender`` in any ``recsys.models`` module joins the contract suite."""
    import importlib
    import inspect
    import pkgutil

    from recsys import models

    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"recsys.models.{info.name}")
        for name, cls in vars(module).items():
            if (
                inspect.isclass(cls)
                and issubclass(cls, Recommender)
                and not inspect.isabstract(cls)
                and cls.__module__ == module.__name__
            ):
                GENERATORS.setdefault(name.lower(), cls)


_extra_generators()
ALL = sorted(GENERATORS)


@pytest.fixture(params=ALL)
def model_cls(request: pytest.FixtureRequest) -> type[Recommender]:
    return GENERATORS[request.param]


def test_refuses_before_fit(model_cls: type[Recommender]) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        model_cls().recommend(["c1"], n=2)


def test_init_stores_params_verbatim(model_cls: type[Recommender]) -> None:
    m = model_cls()
    assert m.get_params() == model_cls(**m.get_params()).get_params()


def test_fit_returns_self_and_shapes(model_cls: type[Recommender], tiny: Dataset) -> None:
    m = model_cls()
    assert m.fit(tiny) is m
    ids, scores = m.recommend(["c1", "c2"], n=3)
    assert ids.shape == (2, 3) and scores.shape == (2, 3)
    # scores sorted descending within each row; padding only at the end
    for row_ids, row_scores in zip(ids, scores, strict=True):
        finite = np.isfinite(row_scores)
        assert np.all(np.diff(row_scores[finite]) <= 1e-6)
        assert all(i != PAD_ID for i in row_ids[finite]) and all(i == PAD_ID for i in row_ids[~finite])


def test_scalar_is_batch_of_one(model_cls: type[Recommender], tiny: Dataset) -> None:
    m = model_cls().fit(tiny)
    batch = m.recommend(["c1", "c3", "c5"], n=4)
    for b, cid in enumerate(["c1", "c3", "c5"]):
        one = m.recommend(cid, n=4)
        assert list(one.ids) == list(batch.ids[b])
        np.testing.assert_allclose(one.scores, batch.scores[b], rtol=1e-5)


@pytest.mark.parametrize("exclude_bought", [False, True])
def test_recommend_frame_is_recommend(model_cls: type[Recommender], tiny: Dataset, exclude_bought: bool) -> None:
    """The batch frame (the candidate layer's input) holds exactly ``recommend``'s rows, unknown
    customers left out."""
    m = model_cls().fit(tiny)
    customers = ["c1", "nobody", "c3", "c5"]
    ids, scores = m.recommend(customers, n=4, exclude_bought=exclude_bought, on_unknown="empty")
    want = [
        (c, str(i), float(s), r + 1)
        for c, row_i, row_s in zip(customers, ids, scores, strict=True)
        for r, (i, s) in enumerate(zip(row_i, row_s, strict=True))
        if i != PAD_ID and np.isfinite(s)
    ]
    frame = m.recommend_frame(customers, n=4, exclude_bought=exclude_bought)
    assert frame.schema == {"customer_id": pl.String, "item_id": pl.String, "score": pl.Float32, "rank": pl.Int32}
    got = list(frame.iter_rows())
    assert [g[:2] + g[3:] for g in got] == [w[:2] + w[3:] for w in want]
    np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], rtol=1e-6)


def test_bad_n_names_parameter(model_cls: type[Recommender], tiny: Dataset) -> None:
    m = model_cls().fit(tiny)
    with pytest.raises(ConfigError, match="'n' parameter"):
        m.recommend(["c1"], n=0)


def test_unknown_customer(model_cls: type[Recommender], tiny: Dataset) -> None:
    m = model_cls().fit(tiny)
    if m.serves_unknown:
        ids, _ = m.recommend(["nobody"], n=2)
        assert ids.shape == (1, 2)
        return
    with pytest.raises(UnknownIdError, match="nobody"):
        m.recommend(["nobody"], n=2)
    ids, scores = m.recommend(["nobody", "c1"], n=2, on_unknown="empty")
    assert list(ids[0]) == [PAD_ID, PAD_ID] and np.all(np.isneginf(scores[0]))


def test_exclude_bought(model_cls: type[Recommender], tiny: Dataset) -> None:
    m = model_cls().fit(tiny)
    ids, _ = m.recommend("c1", n=6, exclude_bought=True)
    assert not {"a1", "a2", "s1"} & set(ids)


def test_deterministic(model_cls: type[Recommender], tiny: Dataset) -> None:
    a = model_cls().fit(tiny).recommend(["c1", "c4", "c6"], n=3)
    b = model_cls().fit(tiny).recommend(["c1", "c4", "c6"], n=3)
    assert (a.ids == b.ids).all()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


def test_save_load_roundtrip(model_cls: type[Recommender], tiny: Dataset, tmp_path) -> None:
    m = model_cls().fit(tiny)
    m.save(tmp_path / "m")
    loaded = model_cls.load(tmp_path / "m")
    a, b = m.recommend(["c1", "c6"], n=3), loaded.recommend(["c1", "c6"], n=3)
    assert (a.ids == b.ids).all()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    # data only: no pickled objects inside
    with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_empty_interactions_is_fit_error_or_works(model_cls: type[Recommender], tiny: Dataset) -> None:
    """A model never crashes with an obscure numpy error on an empty history: fit or say why."""
    empty = tiny.with_interactions(tiny.interactions.filter(pl.lit(False)))
    try:
        model_cls().fit(empty)
    except Exception as exc:  # noqa: BLE001 - any raised error must be ours and readable
        from recsys.exceptions import RecsysError

        assert isinstance(exc, RecsysError), f"{type(exc).__name__}: {exc}"


def test_forget_and_fold_in_commute(model_cls: type[Recommender], tiny: Dataset) -> None:
    """Erasing one customer and folding in another's purchase give the same state in either order.

    Why: the service's workers meet an erasure and a purchase in whichever order they arrive; if the
    order mattered, two workers would answer the same customer differently (and a neighbour list built
    before the erasure would keep a trace of the erased customer)."""
    from datetime import datetime

    purchase = pl.DataFrame({"customer_id": ["c9", "c9"], "item_id": ["a1", "s1"],
                             "ts": [datetime(2025, 3, 1)] * 2, "order_id": ["o99", "o99"],
                             "event": ["purchase", "purchase"]})

    def run(forget_first: bool) -> tuple[np.ndarray, np.ndarray]:
        m = model_cls().fit(tiny)
        try:
            for step in ("forget", "fold") if forget_first else ("fold", "forget"):
                m.forget(["c3"]) if step == "forget" else m.partial_fit(purchase)
        except NotImplementedError:
            pytest.skip(f"{model_cls.__name__} does not fold in or forget")
        r = m.recommend(["c9", "c1"], n=4)
        return r.ids, r.scores

    (ids_a, scores_a), (ids_b, scores_b) = run(True), run(False)
    assert (ids_a == ids_b).all(), (ids_a, ids_b)
    np.testing.assert_allclose(scores_a, scores_b, rtol=1e-5)


def test_knows_folded_in_customers(model_cls: type[Recommender], tiny: Dataset) -> None:
    """``knows`` says yes for a customer folded in since fit (the candidate layer asks it)."""
    from datetime import datetime

    m = model_cls().fit(tiny)
    assert m.knows(["c1", "nobody"]).tolist() == [True, False] or m.serves_unknown or \
        getattr(m, "customer_ids_", None) is None
    try:
        m.partial_fit(pl.DataFrame({"customer_id": ["c9"], "item_id": ["a1"], "ts": [datetime(2025, 3, 1)],
                                    "order_id": ["o99"], "event": ["purchase"]}))
    except NotImplementedError:
        pytest.skip(f"{model_cls.__name__} does not fold in")
    if getattr(m, "customer_ids_", None) is not None:
        assert m.knows(["c9"]).all()

"""The data-only tree ensemble predicts exactly what scikit-learn does."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from recsys.ranking._trees import TreeEnsemble


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    X[rng.random(3000) < 0.25, 1] = np.nan  # missing values take the learned branch
    y = ((X[:, 0] + np.nan_to_num(X[:, 1], nan=2.0) - 0.5 * X[:, 2]) > 0).astype(int)
    return X, y


def test_classifier_matches_sklearn_decision_function() -> None:
    X, y = _data()
    clf = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, random_state=0).fit(X, y)
    ens = TreeEnsemble.from_sklearn(clf)
    np.testing.assert_allclose(ens.predict(X), clf.decision_function(X), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ens.predict_numpy(X), clf.decision_function(X), rtol=1e-9, atol=1e-9)


def test_regressor_roundtrip_through_arrays(tmp_path) -> None:
    X, y = _data(1)
    reg = HistGradientBoostingRegressor(max_iter=25, random_state=0).fit(X, y.astype(float))
    ens = TreeEnsemble.from_sklearn(reg)
    np.savez(tmp_path / "t.npz", **ens.to_arrays())
    with np.load(tmp_path / "t.npz", allow_pickle=False) as npz:
        loaded = TreeEnsemble.from_arrays({k: npz[k] for k in npz.files})
    np.testing.assert_allclose(loaded.predict(X), reg.predict(X), rtol=1e-9, atol=1e-9)
    assert loaded.predict(X[:0]).shape == (0,)


def test_fit_ranker_skips_constant_columns_and_maps_indices_back() -> None:
    import polars as pl

    from recsys.ranking._features import to_matrix
    from recsys.ranking.hybrid import fit_ranker

    X, y = _data(2)
    frame = pl.DataFrame({f"f{i}": X[:, i] for i in range(X.shape[1])}).with_columns(
        pl.lit(0.0).alias("const"), pl.lit(None, pl.Float32).alias("missing"))
    names = ["const", "f0", "missing", "f1", "f2"]
    ens, info = fit_ranker(frame, y, names, max_iter=20, negatives_per_positive=None)
    assert info["features_used"] == 3
    used = set(ens.feature[~ens.is_leaf].tolist())
    assert used <= {1, 3, 4} and 1 in used  # f0 drives the label; indices point into `names`
    score = ens.predict(to_matrix(frame, names))
    assert np.corrcoef(score, X[:, 0] + np.nan_to_num(X[:, 1], nan=2.0))[0, 1] > 0.8


def test_average_of_ensembles_predicts_the_mean(tmp_path) -> None:
    """Bagging: the averaged ensemble scores exactly the mean of its members, on both walkers and
    after a round trip through arrays."""
    X, y = _data(2)
    members = [
        TreeEnsemble.from_sklearn(
            HistGradientBoostingClassifier(max_iter=10 + 5 * s, max_leaf_nodes=7 + s, random_state=s)
            .fit(X[s::2], y[s::2])
        )
        for s in range(3)
    ]
    avg = TreeEnsemble.average(members)
    want = np.mean([m.predict(X) for m in members], axis=0)
    np.testing.assert_allclose(avg.predict(X), want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(avg.predict_numpy(X), want, rtol=1e-9, atol=1e-9)
    np.savez(tmp_path / "a.npz", **avg.to_arrays())
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        loaded = TreeEnsemble.from_arrays({k: npz[k] for k in npz.files})
    np.testing.assert_allclose(loaded.predict(X), want, rtol=1e-9, atol=1e-9)
    assert TreeEnsemble.average(members[:1]) is members[0]


def _lgb_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features with NaNs, exact zeros and tiny values; column 3 has no NaN in training (its nodes get
    missing_type None) but NaN at prediction time; per-query groups for lambdarank."""
    rng = np.random.default_rng(seed)
    n = 4000
    X = rng.normal(size=(n, 6))
    X[rng.random(n) < 0.25, 1] = np.nan
    X[rng.random(n) < 0.3, 2] = 0.0
    X[rng.random(n) < 0.05, 2] = 1e-40  # LightGBM's zero band: |x| <= 1e-35
    X[rng.random(n) < 0.2, 4] = np.nan
    X[rng.random(n) < 0.2, 4] = 0.0
    y = ((X[:, 0] + np.nan_to_num(X[:, 1], nan=2.0) - 0.5 * X[:, 2] + (X[:, 2] == 0)
          + 0.3 * rng.normal(size=n)) > 0.5).astype(int)
    group = np.full(n // 40, 40)
    return X, y, group


def _lgb_test_matrix(X: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Xt = X.copy()
    Xt[rng.random(len(Xt)) < 0.15, 3] = np.nan  # NaN where training saw none (missing_type None)
    Xt[rng.random(len(Xt)) < 0.1, 0] = 0.0
    Xt[rng.random(len(Xt)) < 0.1, 2] = np.nan
    return Xt


@pytest.mark.parametrize("params", [
    {"objective": "binary"},
    {"objective": "binary", "zero_as_missing": True},  # missing_type Zero on every split
    {"objective": "binary", "boost_from_average": False, "monotone_constraints": [1, 0, 0, 0, 0, 0]},
    {"objective": "lambdarank"},
    {"objective": "regression", "num_leaves": 3},
])
def test_lightgbm_matches_raw_score(params: dict[str, object], tmp_path) -> None:
    lgb = pytest.importorskip("lightgbm")
    X, y, group = _lgb_data()
    ds = lgb.Dataset(X, y, group=group if params["objective"] == "lambdarank" else None)
    booster = lgb.train({"num_leaves": 15, **params, "min_data_in_leaf": 5, "verbose": -1, "seed": 0,
                         "num_threads": 1, "deterministic": True, "force_row_wise": True},
                        ds, num_boost_round=30)
    ens = TreeEnsemble.from_lightgbm(booster)
    for Xt in (X, _lgb_test_matrix(X, 1)):
        want = booster.predict(Xt, raw_score=True)
        np.testing.assert_allclose(ens.predict(Xt), want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ens.predict_numpy(Xt), want, rtol=1e-6, atol=1e-6)
    np.savez(tmp_path / "l.npz", **ens.to_arrays())
    with np.load(tmp_path / "l.npz", allow_pickle=False) as npz:
        loaded = TreeEnsemble.from_arrays({k: npz[k] for k in npz.files})
    np.testing.assert_allclose(loaded.predict(X), booster.predict(X, raw_score=True), rtol=1e-6, atol=1e-6)


def test_average_of_lightgbm_ensembles_predicts_the_mean() -> None:
    lgb = pytest.importorskip("lightgbm")
    X, y, group = _lgb_data(3)
    boosters = [
        lgb.train({"objective": obj, "num_leaves": 7 + 4 * s, "verbose": -1, "seed": s, "num_threads": 1,
                   "bagging_fraction": 0.8, "bagging_freq": 1},
                  lgb.Dataset(X, y, group=group), num_boost_round=20)
        for s, obj in enumerate(("binary", "lambdarank"))
    ]
    avg = TreeEnsemble.average([TreeEnsemble.from_lightgbm(b) for b in boosters])
    Xt = _lgb_test_matrix(X, 4)
    want = np.mean([b.predict(Xt, raw_score=True) for b in boosters], axis=0)
    np.testing.assert_allclose(avg.predict(Xt), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(avg.predict_numpy(Xt), want, rtol=1e-6, atol=1e-6)


def test_lightgbm_refuses_what_arrays_cannot_hold() -> None:
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    X = np.c_[rng.integers(0, 5, 1000), rng.normal(size=1000)]
    y = (X[:, 0] % 2 == 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
                        lgb.Dataset(X, y, categorical_feature=[0]), num_boost_round=3)
    with pytest.raises(ValueError, match="'<='"):
        TreeEnsemble.from_lightgbm(booster)
    rf = lgb.train({"objective": "regression", "boosting": "rf", "bagging_fraction": 0.7, "bagging_freq": 1,
                    "verbose": -1}, lgb.Dataset(X, X[:, 1]), num_boost_round=3)
    with pytest.raises(ValueError, match="random-forest"):
        TreeEnsemble.from_lightgbm(rf)


def test_every_walker_gives_the_same_scores_bit_for_bit() -> None:
    """``predict`` runs LightGBM's predictor on our arrays written as its text model; scikit-learn's
    walkers (summing trees in the same order) must give the same doubles, NaN branches, baseline and one-leaf trees
    included (a forced one-leaf tree is appended by hand)."""
    X, y = _data(2)
    clf = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, random_state=0).fit(X, y)
    ens = TreeEnsemble.from_sklearn(clf)
    n = len(ens.feature)
    one_leaf = TreeEnsemble(
        feature=np.r_[ens.feature, 0], threshold=np.r_[ens.threshold, 0.0],
        missing_left=np.r_[ens.missing_left, False], left=np.r_[ens.left, 0], right=np.r_[ens.right, 0],
        value=np.r_[ens.value, 0.125], is_leaf=np.r_[ens.is_leaf, True], roots=np.r_[ens.roots, n],
        baseline=ens.baseline, max_depth=ens.max_depth)
    for model in (ens, one_leaf):
        assert model._lightgbm(X.shape[1]) is not None
        fast = model.predict(X)
        np.testing.assert_allclose(fast, model.predict_numpy(X), rtol=1e-12)  # numpy sums pairwise
        compiled = model._compiled()
        assert compiled is not None
        slow = np.full(len(X), model.baseline)
        for p in compiled:
            slow += p.predict(np.ascontiguousarray(X, dtype=np.float64), np.zeros((0, 8), np.uint32),  # type: ignore[attr-defined]
                              np.zeros(X.shape[1], np.uint32), 1)
        assert np.array_equal(fast, slow)
    np.testing.assert_allclose(one_leaf.predict(X), ens.predict(X) + 0.125, rtol=1e-12)

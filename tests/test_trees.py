"""The data-only tree ensemble predicts exactly what scikit-learn does."""

from __future__ import annotations

import numpy as np
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

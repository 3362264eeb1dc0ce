"""fit_ranker's backends: same options, same artefact, and a ranking objective that sees queries."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from recsys.ranking._features import to_matrix
from recsys.ranking._fit import fit_ranker

pytest.importorskip("lightgbm")


def _queries(seed: int = 0, n_customers: int = 300, per: int = 20) -> tuple[pl.DataFrame, np.ndarray]:
    """Each customer buys the candidate with the highest ``f0`` (the known answer); rows of the
    customers are interleaved, every 10th customer buys nothing, ``f1`` is noise with NaNs, ``const``
    is constant and ``score_buy_again`` (monotone constraint) a weak nudge."""
    rng = np.random.default_rng(seed)
    cust = np.repeat(np.arange(n_customers), per)
    f0 = rng.normal(size=cust.size)
    sba = rng.random(cust.size)
    y = np.zeros(cust.size, dtype=np.int8)
    best = np.array([np.flatnonzero(cust == c)[np.argmax(f0[cust == c] + 0.1 * sba[cust == c])]
                     for c in range(n_customers)])
    y[best] = 1
    y[np.isin(cust, np.arange(0, n_customers, 10))] = 0
    f1 = rng.normal(size=cust.size)
    f1[rng.random(cust.size) < 0.3] = np.nan
    order = rng.permutation(cust.size)
    frame = pl.DataFrame({
        "customer_id": [f"C{c:04d}" for c in cust[order]],
        "f0": f0[order].astype(np.float32), "f1": f1[order].astype(np.float32),
        "score_buy_again": sba[order].astype(np.float32),
        "const": np.ones(cust.size, dtype=np.float32),
    })
    return frame, y[order]


NAMES = ["const", "f0", "f1", "score_buy_again"]


def _top1_hits(frame: pl.DataFrame, y: np.ndarray, score: np.ndarray) -> float:
    """Share of buying customers whose top-scored candidate is the bought one."""
    top = (frame.select("customer_id").with_columns(pl.Series("s", score), pl.Series("y", y))
           .sort("s", descending=True).group_by("customer_id")
           .agg(pl.col("y").first(), pl.col("y").max().alias("m")))
    top = top.filter(pl.col("m") > 0)
    return float(top["y"].to_numpy().mean())


def test_options_are_checked_naming_the_values() -> None:
    frame, y = _queries(n_customers=20)
    with pytest.raises(ValueError, match=r"'backend'.*\('sklearn', 'lightgbm'\).*'xgb'"):
        fit_ranker(frame, y, NAMES, backend="xgb")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs backend='lightgbm'"):
        fit_ranker(frame, y, NAMES, objective="lambdarank")
    with pytest.raises(ValueError, match="'customer_id'"):
        fit_ranker(frame.drop("customer_id"), y, NAMES, backend="lightgbm", objective="lambdarank")


def test_every_backend_learns_the_known_answer() -> None:
    frame, y = _queries()
    test, y_test = _queries(seed=1)
    runs: list[dict[str, Any]] = [{"backend": "sklearn", "objective": "binary"},
                                  {"backend": "lightgbm", "objective": "binary"},
                                  {"backend": "lightgbm", "objective": "lambdarank"}]
    for run in runs:
        backend, objective = run["backend"], run["objective"]
        ens, info = fit_ranker(frame, y, NAMES, **run, max_iter=40, negatives_per_positive=None)
        assert info["backend"] == backend and info["objective"] == objective
        assert info["candidates"] == info["rows"] == 270 * 20  # customers without a purchase left out
        assert info["features_used"] == 3 and 0 not in set(ens.feature[~ens.is_leaf].tolist())
        assert _top1_hits(test, y_test, ens.predict(to_matrix(test, NAMES))) > 0.7, (backend, objective)


def test_lambdarank_groups_interleaved_rows_by_customer() -> None:
    """Query groups are contiguous runs of rows: interleaved customers must give exactly the model that
    the same rows sorted by customer give (if the rows were not regrouped, LightGBM would read wrong
    queries and fit something else)."""
    frame, y = _queries(3)
    ordered = frame.with_columns(pl.Series("_y", y)).sort("customer_id", maintain_order=True)
    kw: dict[str, Any] = dict(backend="lightgbm", objective="lambdarank", max_iter=10,
                              negatives_per_positive=None)
    interleaved, _ = fit_ranker(frame, y, NAMES, **kw)
    grouped, _ = fit_ranker(ordered.drop("_y"), ordered["_y"].to_numpy(), NAMES, **kw)
    X = to_matrix(frame, NAMES)
    np.testing.assert_array_equal(interleaved.predict(X), grouped.predict(X))
    one_query, _ = fit_ranker(frame.with_columns(pl.lit("all").alias("customer_id")), y, NAMES, **kw)
    assert not np.array_equal(one_query.predict(X), grouped.predict(X))  # the grouping does matter


@pytest.mark.parametrize("objective", ["binary", "lambdarank"])
def test_lightgbm_is_deterministic_bagged_and_monotone(objective: str) -> None:
    frame, y = _queries(2)
    kw: dict[str, Any] = dict(backend="lightgbm", objective=objective, max_iter=15,
                              negatives_per_positive=3.0)
    one, info1 = fit_ranker(frame, y, NAMES, random_state=5, **kw)
    again, _ = fit_ranker(frame, y, NAMES, random_state=5, **kw)
    X = to_matrix(frame, NAMES)
    np.testing.assert_array_equal(one.predict(X), again.predict(X))
    assert info1["rows"] < info1["candidates"]  # negatives subsampled
    bagged, info3 = fit_ranker(frame, y, NAMES, random_state=5, bags=3, **kw)
    assert info3["bags"] == 3 and len(bagged.roots) == 3 * len(one.roots)
    members = [fit_ranker(frame, y, NAMES, random_state=5 + b, **kw)[0] for b in range(3)]
    np.testing.assert_allclose(bagged.predict(X), np.mean([m.predict(X) for m in members], axis=0), atol=1e-9)
    # MONOTONIC: a higher buy-again score never lowers the score
    grid = np.repeat(X[:50], 11, axis=0)
    grid[:, NAMES.index("score_buy_again")] = np.tile(np.linspace(0, 1, 11), 50)
    assert np.all(np.diff(bagged.predict(grid).reshape(50, 11), axis=1) >= -1e-12)

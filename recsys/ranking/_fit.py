"""Fitting the learned ranker: labelled candidate frames in, a data-only ``TreeEnsemble`` out.

Split out of ``hybrid.py`` so the serving path (candidates → features → scores) and the training
path (sampling, boosting backends) can change independently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from recsys.ranking._features import to_matrix
from recsys.ranking._trees import TreeEnsemble

__all__ = ["MONOTONIC", "fit_ranker"]

log = logging.getLogger(__name__)


#: Evidence that must never lower the score: more repeat purchases, a higher buy-again score.  On
#: Complete Journey these constraints cut the ranker's loss to the buy-again generator on the (later,
#: holiday) test window by a third: they stop it learning validation-week quirks against repeat signal.
MONOTONIC: dict[str, int] = {"score_buy_again": 1, "rank_buy_again": -1, "ci_count": 1}


def fit_ranker(
    frame: pl.DataFrame,
    labels: np.ndarray,
    names: Sequence[str],
    *,
    max_iter: int = 80,
    learning_rate: float = 0.1,
    max_leaf_nodes: int = 31,
    negatives_per_positive: float | None = 30.0,
    random_state: int = 0,
    monotonic: dict[str, int] | None = MONOTONIC,
    min_samples_leaf: int = 20,
    bags: int = 1,
) -> tuple[TreeEnsemble, dict[str, Any]]:
    """Train the gradient-boosted ranker (binary: bought / not bought) and export it as arrays.

    Negatives are subsampled per customer group only to bound training time; the ranking of
    candidates within a customer is what matters, and a constant subsampling rate does not change it.
    ``bags`` > 1 fits that many rankers on different negative samples and averages them: with few
    positives (the cross-sell ranker on Complete Journey: ~7k) one sample's ranker varies by ±5% MAP
    from seed to seed, and the average is both steadier and better than a typical single one.
    """
    if bags > 1 and negatives_per_positive is not None:
        fits = [
            fit_ranker(frame, labels, names, max_iter=max_iter, learning_rate=learning_rate,
                       max_leaf_nodes=max_leaf_nodes, negatives_per_positive=negatives_per_positive,
                       random_state=random_state + b, monotonic=monotonic, min_samples_leaf=min_samples_leaf)
            for b in range(bags)
        ]
        info = dict(fits[0][1])
        info.update(bags=bags, seconds=round(sum(f[1]["seconds"] for f in fits), 2),
                    rows=int(sum(f[1]["rows"] for f in fits)))
        return TreeEnsemble.average([f[0] for f in fits]), info
    from sklearn.ensemble import HistGradientBoostingClassifier

    t0 = time.perf_counter()
    # Customers who bought none of their candidates teach "who buys", not "which item": like a
    # learning-to-rank query without positives, they are left out.
    y_all = np.asarray(labels)
    with_pos = np.ones(len(y_all), dtype=bool)
    if "customer_id" in frame.columns:
        with_pos = (
            frame.select("customer_id").with_columns(pl.Series("_y", y_all))
            .select(pl.col("_y").max().over("customer_id"))["_y"].to_numpy() > 0
        )
    frame = frame.filter(pl.Series(with_pos))
    X = to_matrix(frame, names)
    y = y_all[with_pos]
    rng = np.random.default_rng(random_state)
    keep = np.ones(len(y), dtype=bool)
    n_pos = int(y.sum())
    if negatives_per_positive is not None and n_pos > 0:
        rate = min(1.0, negatives_per_positive * n_pos / max(1, len(y) - n_pos))
        keep = (y == 1) | (rng.random(len(y)) < rate)
    if n_pos == 0 or n_pos == len(y):
        raise ValueError("ranker training needs both bought and not-bought candidates in the label window")
    # Constant or all-missing columns carry no signal and trip scikit-learn's binning (1.9: "window
    # shape cannot be larger than input array shape"); fit without them and map indices back after.
    Xk = X[keep]
    varying = np.array([np.unique(col[~np.isnan(col)]).size > 1 for col in Xk.T], dtype=bool)
    cols = np.flatnonzero(varying)
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: on a shared 2-core machine, OpenMP's spin-waiting under contention made the same
    # fit take 2.5 s or 55 s; single-threaded it is predictable (and the rows are few).
    with threadpool_limits(limits=1, user_api="openmp"):
        clf = HistGradientBoostingClassifier(
            max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
            early_stopping=False, random_state=random_state, l2_regularization=1.0,
            min_samples_leaf=min_samples_leaf,
            monotonic_cst=[int((monotonic or {}).get(names[c], 0)) for c in cols] if monotonic else None,
        ).fit(Xk[:, cols], y[keep])
    info = {
        "rows": int(keep.sum()), "positives": n_pos, "candidates": int(len(y)),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info("ranker: %d rows (%d positives) in %.1fs", info["rows"], n_pos, info["seconds"])
    ens = TreeEnsemble.from_sklearn(clf)
    ens.feature = np.where(ens.is_leaf, 0, cols[ens.feature]).astype(np.int32)
    info["features_used"] = int(len(cols))
    return ens, info

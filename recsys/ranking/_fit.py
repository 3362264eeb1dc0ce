"""Fitting the learned ranker: labelled candidate frames in, a data-only ``TreeEnsemble`` out.

Split out of ``hybrid.py`` so the serving path (candidates → features → scores) and the training
path (sampling, boosting backends) can change independently.

Two backends give the same artefact: scikit-learn's ``HistGradientBoostingClassifier`` (the default)
and LightGBM, which also offers a learning-to-rank objective (``lambdarank``, one query per customer)
that orders a customer's candidates directly instead of predicting bought / not bought across all
customers.  Either way the fitted model is copied into flat arrays: no pickle, nothing to import to
serve it.  On Complete Journey (mean of seeds 0-2, same candidates and features) LightGBM binary took
~35% less CPU (14 s vs 22 s for both rankers) but its cross-sell ranker scored 3% lower
(new-to-customer MAP@12 0.0142 vs 0.0147); lambdarank matched all-items MAP (0.2019 vs 0.2018), lost
7% new-to-customer and took longer.  So scikit-learn stays the default.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from recsys.ranking._features import to_matrix
from recsys.ranking._trees import TreeEnsemble

__all__ = ["MONOTONIC", "Backend", "Objective", "fit_ranker"]

log = logging.getLogger(__name__)

Backend = Literal["sklearn", "lightgbm"]
Objective = Literal["binary", "lambdarank"]
_BACKENDS: tuple[str, ...] = ("sklearn", "lightgbm")
_OBJECTIVES: tuple[str, ...] = ("binary", "lambdarank")

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
    backend: Backend = "sklearn",
    objective: Objective = "binary",
    num_threads: int = 1,
) -> tuple[TreeEnsemble, dict[str, Any]]:
    """Train the gradient-boosted ranker and export it as arrays.

    Parameters
    ----------
    frame, labels, names
        Candidate rows (``customer_id`` identifies the customer — the query), 1 = bought in the label
        window, and the feature columns in the order the served model reads them.
    negatives_per_positive
        Negatives are subsampled (each kept with one rate) only to bound training time; the ranking of
        candidates within a customer is what matters, and a constant rate does not change it.  ``None``
        keeps every row.
    bags
        > 1 fits that many rankers on different negative samples and averages them: with few positives
        (the cross-sell ranker on Complete Journey: ~7k) one sample's ranker varies by ±5% MAP from seed
        to seed, and the average is both steadier and better than a typical single one.
    backend, objective
        ``"sklearn"`` / ``"lightgbm"``; ``"binary"`` (log loss on bought / not bought) or ``"lambdarank"``
        (LightGBM only: pairwise NDCG gradients within each customer's candidates).
    num_threads
        OpenMP threads.  One by default: on a shared 2-core machine OpenMP's spin-waiting under
        contention made the same fit take 2.5 s or 55 s; single-threaded it is predictable.
    """
    if backend not in _BACKENDS:
        raise ValueError(
            f"The 'backend' parameter of fit_ranker must be one of {_BACKENDS}. Got {backend!r}.")
    if objective not in _OBJECTIVES:
        raise ValueError(
            f"The 'objective' parameter of fit_ranker must be one of {_OBJECTIVES}. Got {objective!r}.")
    if objective == "lambdarank" and backend != "lightgbm":
        raise ValueError(f"objective='lambdarank' needs backend='lightgbm'; got backend={backend!r}")
    if objective == "lambdarank" and "customer_id" not in frame.columns:
        raise ValueError("objective='lambdarank' needs a 'customer_id' column: it names each row's query")
    t0 = time.perf_counter()
    X, y, query = _labelled_rows(frame, labels, names)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError("ranker training needs both bought and not-bought candidates in the label window")
    # The matrix is built once and every bag draws its rows from it: converting the frame per bag
    # cost as much as a LightGBM fit (8 bags of the cross-sell ranker on Complete Journey).
    n_fits = bags if negatives_per_positive is not None else 1
    members, rows = [], 0
    for b in range(n_fits):
        keep = np.ones(len(y), dtype=bool)
        if negatives_per_positive is not None:
            rng = np.random.default_rng(random_state + b)
            rate = min(1.0, negatives_per_positive * n_pos / max(1, len(y) - n_pos))
            keep = (y == 1) | (rng.random(len(y)) < rate)
        idx = np.flatnonzero(keep)
        if objective == "lambdarank":  # LightGBM's queries are runs of contiguous rows
            idx = idx[np.argsort(query[idx], kind="stable")]
        Xb = X[idx]
        # Constant or all-missing columns carry no signal and trip scikit-learn's binning (1.9: "window
        # shape cannot be larger than input array shape"); fit without them and map indices back after.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: nanmin is NaN, not varying
            cols = np.flatnonzero(np.nanmin(Xb, axis=0) < np.nanmax(Xb, axis=0))
        mono = [int((monotonic or {}).get(names[int(c)], 0)) for c in cols] if monotonic else None
        opts: dict[str, Any] = dict(
            max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
            min_samples_leaf=min_samples_leaf, random_state=random_state + b, monotonic=mono,
            num_threads=num_threads)
        if backend == "sklearn":
            ens = _fit_sklearn(Xb[:, cols], y[idx], **opts)
        else:
            groups = query[idx] if objective == "lambdarank" else None
            ens = _fit_lightgbm(Xb[:, cols], y[idx], groups, **opts)
        ens.feature = np.where(ens.is_leaf, 0, cols[ens.feature]).astype(np.int32)
        members.append(ens)
        rows += len(idx)
        del Xb
    info: dict[str, Any] = {
        "rows": rows, "positives": n_pos, "candidates": int(len(y)),
        "seconds": round(time.perf_counter() - t0, 2), "backend": backend, "objective": objective,
        "features_used": int(len(cols)),
    }
    if n_fits > 1:
        info["bags"] = n_fits
    log.info("ranker (%s, %s): %d fit(s), %d rows (%d positives) in %.1fs", backend, objective, n_fits, rows,
             n_pos, info["seconds"])
    return TreeEnsemble.average(members), info


def _labelled_rows(
    frame: pl.DataFrame, labels: np.ndarray, names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix, labels and query number (per ``customer_id``) of the customers who bought.

    Customers who bought none of their candidates teach "who buys", not "which item": like a
    learning-to-rank query without positives, they are left out.  Rows keep the frame's order
    (scikit-learn bins a row subsample drawn by position, so the order is part of its result).
    """
    y_all = np.asarray(labels)
    if "customer_id" not in frame.columns:
        return to_matrix(frame, names), y_all, np.zeros(len(y_all), dtype=np.int64)
    query = frame["customer_id"].rank("dense").to_numpy().astype(np.int64)
    bought = np.zeros(int(query.max(initial=0)) + 1, dtype=bool)
    bought[query[y_all > 0]] = True
    keep = bought[query]
    if keep.all():
        return to_matrix(frame, names), y_all, query
    return to_matrix(frame.filter(pl.Series(keep)), names), y_all[keep], query[keep]


def _fit_sklearn(
    X: np.ndarray, y: np.ndarray, *, max_iter: int, learning_rate: float, max_leaf_nodes: int,
    min_samples_leaf: int, random_state: int, monotonic: list[int] | None, num_threads: int,
) -> TreeEnsemble:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=num_threads, user_api="openmp"):
        clf = HistGradientBoostingClassifier(
            max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
            early_stopping=False, random_state=random_state, l2_regularization=1.0,
            min_samples_leaf=min_samples_leaf, monotonic_cst=monotonic,
        ).fit(X, y)
    return TreeEnsemble.from_sklearn(clf)


def _fit_lightgbm(
    X: np.ndarray, y: np.ndarray, query: np.ndarray | None, *, max_iter: int, learning_rate: float,
    max_leaf_nodes: int, min_samples_leaf: int, random_state: int, monotonic: list[int] | None,
    num_threads: int,
) -> TreeEnsemble:
    """LightGBM with scikit-learn's settings where they have a twin (255 bins, L2 = 1, leaf size).

    ``deterministic`` + ``force_row_wise`` make a seed give the same trees on every run and thread
    count; ``query`` (rows grouped contiguously) switches the objective to lambdarank.
    """
    import lightgbm as lgb

    params: dict[str, Any] = {
        "objective": "binary" if query is None else "lambdarank",
        "learning_rate": learning_rate, "num_leaves": max_leaf_nodes, "min_data_in_leaf": min_samples_leaf,
        "lambda_l2": 1.0, "max_bin": 255, "seed": random_state, "num_threads": num_threads,
        "deterministic": True, "force_row_wise": True, "verbose": -1,
    }
    if monotonic is not None and any(monotonic):
        params["monotone_constraints"] = monotonic
    group = None
    if query is not None:
        _, group = np.unique(query, return_counts=True)  # rows grouped by sorted query: counts = group sizes
    data = lgb.Dataset(X, label=y, group=group, params=params, free_raw_data=True)
    booster = lgb.train(params, data, num_boost_round=max_iter)
    return TreeEnsemble.from_lightgbm(booster)

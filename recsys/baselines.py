"""Baselines evaluated in every training run, with the same code on the same split.

Why here and not only in a notebook: any model's number means something only as a ratio to these,
measured in the same run.  Every baseline list is padded with (decayed) popularity so that all lists
are full, exactly like the served list — a missing slot would otherwise count as a free failure.

TIFU-KNN (``recsys.models.tifu_knn``) is the strongest simple next-basket method in the literature;
its few parameters are tuned here by a cheap coordinate search on a validation window *before* the
test cut-off (``tune_tifu_knn``), so the baseline is as strong as it can honestly be.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys._io import atomic_write_text
from recsys.dataset import Dataset
from recsys.models.base import PAD_ID, Recommender
from recsys.models.popularity import Popularity

__all__ = ["pad_with_popular", "model_lists", "buy_again_then_popular", "tune_tifu_knn", "TIFU_GRID"]

log = logging.getLogger(__name__)

#: Values tried per TIFU-KNN parameter, around the paper's (one coordinate at a time, from the
#: defaults): ~10 evaluations instead of the 243 of the full grid.
TIFU_GRID: dict[str, tuple[Any, ...]] = {
    "n_neighbors": (100, 300),
    "alpha": (0.5, 0.7, 0.9),
    "group_size": (3, 7, 14),
    "within_decay": (0.8, 0.9, 1.0),
    "group_decay": (0.5, 0.7, 0.9),
}
_BLEND = ("n_neighbors", "alpha")  # changed without refitting (``TIFUKNN.with_blend``)
_TUNED: dict[str, dict[str, Any]] = {}  # this process's results, by cache key
#: Customers a tuning fit learns from at most (the window's first, then a sample of the others).
_TUNING_FIT_CUSTOMERS = 20_000


def pad_with_popular(lists: pl.DataFrame, customer_ids: Sequence[str], popular: Sequence[str], k: int) -> pl.DataFrame:
    """Fill every customer's list up to ``k`` with ``popular`` items not already in it."""
    pop = pl.DataFrame({"item_id": list(popular)}, schema={"item_id": pl.String}).with_row_index("_p")
    pad = (
        pl.DataFrame({"customer_id": list(customer_ids)}, schema={"customer_id": pl.String})
        .join(pop, how="cross")
        .join(lists.select("customer_id", "item_id"), on=["customer_id", "item_id"], how="anti")
        .with_columns((pl.col("_p").cast(pl.Int32) + 10_000).alias("rank"))
        .drop("_p")
    )
    both = pl.concat([lists.select("customer_id", "item_id", pl.col("rank").cast(pl.Int32)), pad.select("customer_id", "item_id", "rank")])
    return (
        both.sort("customer_id", "rank")
        .group_by("customer_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("customer_id").alias("rank"))
    )


def model_lists(
    model: Recommender, customer_ids: Sequence[str], k: int, popular: Sequence[str], *, exclude_bought: bool = False
) -> pl.DataFrame:
    """A single generator's top-``k`` (unknown customers get nothing from it), padded with popular."""
    customers = np.asarray(list(customer_ids), dtype=object)
    ids, _ = model.recommend(customers, k, exclude_bought=exclude_bought, on_unknown="empty")
    b, n = ids.shape
    frame = pl.DataFrame({
        "customer_id": np.repeat(customers, n).astype(str),
        "item_id": ids.reshape(-1).astype(str),
        "rank": np.tile(np.arange(1, n + 1, dtype=np.int32), b),
    }).filter(pl.col("item_id") != PAD_ID)
    return pad_with_popular(frame, customer_ids, popular, k)


def buy_again_then_popular(train: Dataset, customer_ids: Sequence[str], k: int, popular: Sequence[str]) -> pl.DataFrame:
    """The classic grocery baseline: the customer's own items by purchase count (then recency), then popular."""
    wanted = pl.Series(list(customer_ids), dtype=pl.String)
    own = (
        train.purchases.filter(pl.col("customer_id").is_in(wanted.implode()))
        .group_by("customer_id", "item_id")
        .agg(pl.len().alias("n"), pl.col("ts").max().alias("last"))
        .sort(["customer_id", "n", "last", "item_id"], descending=[False, True, True, False])
        .group_by("customer_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("customer_id").alias("rank"))
    )
    return pad_with_popular(own, customer_ids, popular, k)


def popular_items(model: Popularity, k: int, *, exclude: Sequence[str] = ()) -> list[str]:
    """The ``k`` most popular item ids, skipping ``exclude`` and padding ids (asks for ``k + len(exclude)``
    so the excluded ones do not shorten the list)."""
    ids, _ = model.popular(k + len(exclude))
    drop = set(exclude)
    return [i for i in ids.tolist() if i and i not in drop][:k]



def tune_tifu_knn(
    before: Dataset, window: Dataset, *, k: int, grid: Mapping[str, Sequence[Any]] = TIFU_GRID,
    fixed: Mapping[str, Any] | None = None, max_customers: int | None = 2000, seed: int = 0,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """TIFU-KNN parameters with the best MAP@``k`` on ``window`` for a model fitted on ``before``.

    Coordinate search: from the defaults, each parameter in ``grid`` in turn takes its best value
    with the others held (one pass; the blend parameters first, as they need no refit).  Customers
    are those of ``window`` the model knows, at most ``max_customers`` (a seeded sample); lists are
    padded with popular items as every baseline's.  ``window`` must end at or before the test
    cut-off: that is the caller's promise, and the point of the function.

    Returns ``{"params", "map", "tried": [{params…, "map"}], "customers", "seconds", "cached"}``.
    Results are kept for the process, and in ``cache_dir`` (a JSON file per data and grid) if given.
    """
    from recsys.evaluation import evaluate
    from recsys.models.tifu_knn import TIFUKNN

    fixed = dict(fixed or {})
    key = _tuning_key(before, window, k=k, grid=grid, fixed=fixed, max_customers=max_customers, seed=seed)
    path = Path(cache_dir) / f"tifu-knn-{key}.json" if cache_dir is not None else None
    if key not in _TUNED and path is not None and path.exists():
        _TUNED[key] = json.loads(path.read_text())
    if key in _TUNED:
        return {**_TUNED[key], "cached": True}
    t0 = time.perf_counter()
    grid = {name: tuple(values) for name, values in grid.items()}
    best = {**TIFUKNN().get_params(), **fixed}
    widest = max(best["n_neighbors"], *grid.get("n_neighbors", ()))
    before = _customer_sample(before, window, _TUNING_FIT_CUSTOMERS, seed)
    base = TIFUKNN(**{**best, "n_neighbors": widest}).fit(before)
    known = [c for c in window.purchases["customer_id"].unique().sort().to_list() if c in base.customer_ids_]
    if max_customers and len(known) > max_customers:
        known = sorted(random.Random(seed).sample(known, max_customers))
    popular = popular_items(Popularity(half_life_days=14).fit(before), 3 * k)
    truth = window.purchases.filter(pl.col("customer_id").is_in(pl.Series(known, dtype=pl.String).implode()))

    def vec_of(p: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted((n, v) for n, v in p.items() if n not in _BLEND))

    fitted: dict[tuple[Any, ...], TIFUKNN] = {vec_of(best): base}
    tried: dict[tuple[Any, ...], float] = {}

    def score(p: dict[str, Any]) -> float:
        sig = tuple(sorted(p.items()))
        if sig not in tried:
            vec = vec_of(p)
            if vec not in fitted:
                fitted[vec] = TIFUKNN(**{**p, "n_neighbors": widest}).refit_like(base)
            model = fitted[vec].with_blend(n_neighbors=p["n_neighbors"], alpha=p["alpha"])
            lists = model_lists(model, known, k, popular)
            tried[sig] = float(evaluate(lists, truth, k=k, variants=("all",))["map"][0])
        return tried[sig]

    best_map = score(best)
    for name in [n for n in _BLEND if n in grid] + [n for n in grid if n not in _BLEND]:
        for value in grid[name]:
            candidate = {**best, name: value}
            got = score(candidate)
            if got > best_map + 1e-12:
                best, best_map = candidate, got
        fitted = {v: m for v, m in fitted.items() if m is base or v == vec_of(best)}  # bound memory
    result = {
        "params": best, "map": best_map, "customers": len(known), "seconds": round(time.perf_counter() - t0, 1),
        "tried": [{**dict(sig), "map": m} for sig, m in tried.items()],
    }
    log.info("TIFU-KNN tuned on %d validation customers in %.1fs: MAP@%d %.4f with %s", len(known),
             result["seconds"], k, best_map, best)
    _TUNED[key] = result
    if path is not None:
        atomic_write_text(path, json.dumps(result, indent=1, default=str))
    return {**result, "cached": False}


def _customer_sample(before: Dataset, window: Dataset, cap: int, seed: int) -> Dataset:
    """``before`` restricted to at most ``cap`` customers — every customer of ``window`` (up to the cap)
    and a seeded sample of the others — so that tuning costs the same on a big shop as on a small one
    (TIFU-KNN's neighbours then come from that sample: fewer than the served model's)."""
    everyone = before.purchases["customer_id"].unique().sort().to_list()
    if len(everyone) <= cap:
        return before
    inside = set(window.purchases["customer_id"].unique().to_list())
    ours = [c for c in everyone if c in inside]
    rng = random.Random(seed)
    chosen = rng.sample(ours, cap) if len(ours) > cap else ours
    others = [c for c in everyone if c not in inside]
    chosen = chosen + rng.sample(others, min(len(others), cap - len(chosen)))
    keep = pl.Series(sorted(chosen), dtype=pl.String).implode()
    return before.with_interactions(before.interactions.filter(pl.col("customer_id").is_in(keep)))


def _tuning_key(before: Dataset, window: Dataset, **settings: Any) -> str:
    """Content key of a tuning run: the purchases it learns from and is judged on, and its settings."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for frame in (before.purchases, window.purchases):
        cols = frame.select("customer_id", "item_id", "ts", *(["order_id"] if "order_id" in frame.columns else []))
        h.update(str(cols.height).encode())
        h.update(np.uint64(cols.hash_rows(seed=0).sum()).tobytes())
    return h.hexdigest()[:16]

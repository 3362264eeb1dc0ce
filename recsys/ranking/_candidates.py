"""Stage one: union the candidates of every generator into one long frame, then one row per pair.

Why keep every generator's score *and* rank: scores are on incomparable scales (a lift, a probability,
a dot product); ranks are comparable and the learned ranker weighs both.  Absent = null, which the
tree ranker treats as "this generator did not propose it" — itself informative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from recsys.models.base import PAD_ID, Recommender

__all__ = ["collect_candidates", "widen"]

_LONG_SCHEMA = {
    "customer_id": pl.String,
    "item_id": pl.String,
    "gen": pl.String,
    "score": pl.Float32,
    "rank": pl.Int32,
    "source_item_id": pl.String,
    "source_ts": pl.Datetime("us"),
}


def _from_arrays(name: str, customers: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> pl.DataFrame:
    b, k = ids.shape
    frame = pl.DataFrame(
        {
            "customer_id": np.repeat(customers, k).astype(str),
            "item_id": ids.reshape(-1).astype(str),
            "score": scores.reshape(-1).astype(np.float32),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), b),
        }
    )
    return frame.filter(pl.col("item_id") != PAD_ID).with_columns(
        pl.lit(name).alias("gen"),
        pl.lit(None, pl.String).alias("source_item_id"),
        pl.lit(None, pl.Datetime("us")).alias("source_ts"),
    )


def _with_sources(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    cols = frame.columns
    src_item = pl.col("source_item_id") if "source_item_id" in cols else pl.lit(None, pl.String)
    ts_col = next((c for c in ("source_ts", "last_bought_ts") if c in cols), None)
    src_ts = pl.col(ts_col) if ts_col else pl.lit(None, pl.Datetime("us"))
    if ts_col == "last_bought_ts" and "source_item_id" not in cols:
        src_item = pl.col("item_id")  # buy-again: the source is the item itself, bought on that date
    return frame.select(
        pl.col("customer_id").cast(pl.String),
        pl.col("item_id").cast(pl.String),
        pl.lit(name).alias("gen"),
        pl.col("score").cast(pl.Float32),
        pl.col("rank").cast(pl.Int32),
        src_item.cast(pl.String).alias("source_item_id"),
        src_ts.cast(pl.Datetime("us")).alias("source_ts"),
    )


def collect_candidates(
    generators: Mapping[str, Recommender],
    customer_ids: Sequence[str] | np.ndarray,
    n: Mapping[str, int] | int,
    *,
    exclude_bought: bool = False,
) -> pl.DataFrame:
    """Long frame (customer_id, item_id, gen, score, rank, source_item_id, source_ts).

    ``exclude_bought`` asks every generator for items the customer never bought (the cross-sell view):
    otherwise, on repeat-heavy data, already-bought items fill most of each generator's slots.

    Generators that can explain themselves (``recommend_with_sources``) contribute the source item and
    date used in explanations.  Customers a generator does not know simply get nothing from it.
    """
    customers = np.asarray(list(customer_ids), dtype=object)
    parts = []
    for name, gen in generators.items():
        k = n if isinstance(n, int) else n.get(name, 0)
        if k <= 0 or len(customers) == 0:
            continue
        known = customers if gen.serves_unknown else customers[_known_mask(gen, customers)]
        if len(known) == 0:
            continue
        explain = getattr(gen, "recommend_with_sources", None)
        if explain is not None:
            kwargs = {"exclude_bought": True} if exclude_bought else {}
            if exclude_bought and "exclude_bought" not in _params(explain):
                continue  # a generator that cannot leave bought items out has nothing new to offer
            parts.append(_with_sources(name, explain(known.tolist(), k, **kwargs)))
        else:
            ids, scores = gen.recommend(known, k, on_unknown="empty", exclude_bought=exclude_bought)
            parts.append(_from_arrays(name, known, ids, scores).select(list(_LONG_SCHEMA)))
    if not parts:
        return pl.DataFrame(schema=_LONG_SCHEMA)
    return pl.concat(parts, how="vertical_relaxed").filter(pl.col("score").is_finite())


def _params(fn: object) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def _known_mask(gen: Recommender, customers: np.ndarray) -> np.ndarray:
    cmap = getattr(gen, "customer_ids_", None)
    if cmap is None:
        return np.ones(len(customers), dtype=bool)
    return cmap.index(customers) >= 0


def widen(long: pl.DataFrame, generator_names: Sequence[str], reason_of: Mapping[str, str]) -> pl.DataFrame:
    """One row per (customer, item): ``score_<gen>``, ``rank_<gen>``, ``n_gens``, and the explanation
    (reason type and source) of the generator that ranked the item best."""
    if long.height == 0:
        base = pl.DataFrame(schema={"customer_id": pl.String, "item_id": pl.String})
    else:
        base = long.select("customer_id", "item_id").unique(maintain_order=True)
    aggs = []
    for g in generator_names:
        m = pl.col("gen") == g
        aggs += [
            pl.col("score").filter(m).max().alias(f"score_{g}"),
            pl.col("rank").filter(m).min().cast(pl.Float32).alias(f"rank_{g}"),
        ]
    priority = {g: i for i, g in enumerate(generator_names)}
    best = (
        long.with_columns(pl.col("gen").replace_strict(priority, default=len(priority)).alias("_prio"))
        .sort("customer_id", "item_id", "rank", "_prio")
        .group_by("customer_id", "item_id", maintain_order=True)
        .agg(
            pl.col("gen").first().alias("reason_gen"),
            pl.col("source_item_id").drop_nulls().first(),
            pl.col("source_ts").drop_nulls().first(),
            pl.col("gen").n_unique().cast(pl.Float32).alias("n_gens"),
            *aggs,
        )
    )
    out = base.join(best, on=["customer_id", "item_id"], how="left", maintain_order="left")
    return out.with_columns(
        pl.col("reason_gen").replace_strict(dict(reason_of), default="popular").alias("reason_type")
    )

"""Stage one: union the candidates of every generator into one long frame, then one row per pair.

Why keep every generator's score *and* rank: scores are on incomparable scales (a lift, a probability,
a dot product); ranks are comparable and the learned ranker weighs both.  Absent = null, which the
tree ranker treats as "this generator did not propose it" — itself informative.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from recsys.models.base import Recommender

__all__ = ["SOURCED_REASONS", "collect_candidates", "widen"]

#: Reason types that point at a source item (the customer's purchase, the page or cart item, the item
#: asked about).  Every other type ("popular", "trending_in_category", "similar_customers", "pinned",
#: "ranked") is about the shop or about similar customers and carries no source item or date: a
#: candidate labelled "Popular right now" that also says "bought … on 2025-03-02" contradicts itself.
SOURCED_REASONS = ("bought_with", "complements_category", "buy_again", "similar_items")

#: Threads asking generators at once in a batch (the machine's cores, at most 4), and the batch size
#: from which they are used.
_WORKERS = min(os.cpu_count() or 1, 4)
_THREADED_FROM = 200

_LONG_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "customer_id": pl.String,
    "item_id": pl.String,
    "gen": pl.String,
    "score": pl.Float32,
    "rank": pl.Int32,
    "source_item_id": pl.String,
    "source_ts": pl.Datetime("us"),
    "reason": pl.String,  # a generator's per-candidate reason type (null: the generator's own)
}


def _plain(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """A generator's ``recommend_frame`` in the long schema (no source, no per-candidate reason)."""
    return frame.select(
        "customer_id", "item_id", pl.lit(name).alias("gen"), "score", "rank",
        pl.lit(None, pl.String).alias("source_item_id"), pl.lit(None, pl.Datetime("us")).alias("source_ts"),
        pl.lit(None, pl.String).alias("reason"),
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
        (pl.col("reason_type") if "reason_type" in cols else pl.lit(None)).cast(pl.String).alias("reason"),
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

    def one(name: str, gen: Recommender) -> pl.DataFrame | None:
        k = n if isinstance(n, int) else n.get(name, 0)
        if k <= 0 or len(customers) == 0:
            return None
        known = customers if gen.serves_unknown else customers[_known_mask(gen, customers)]
        if len(known) == 0:
            return None
        explain = getattr(gen, "recommend_with_sources", None)
        if explain is not None:
            kwargs = {"exclude_bought": True} if exclude_bought else {}
            if exclude_bought and "exclude_bought" not in _params(explain):
                return None  # a generator that cannot leave bought items out has nothing new to offer
            return _with_sources(name, explain(known.tolist(), k, **kwargs))
        return _plain(name, gen.recommend_frame(known, k, exclude_bought=exclude_bought))

    # Generators are independent and their heavy parts (sparse products, BLAS, polars) release the
    # GIL, so a batch asks them in threads; results do not depend on it (each generator is asked by
    # one thread, in order).  Small requests stay on one thread, where a pool costs more than it saves.
    workers = min(_WORKERS, len(generators)) if len(customers) >= _THREADED_FROM else 1
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="candidates") as pool:
            parts = [p for p in pool.map(one, generators.keys(), generators.values()) if p is not None]
    else:
        parts = [p for p in map(one, generators.keys(), generators.values()) if p is not None]
    if not parts:
        return pl.DataFrame(schema=_LONG_SCHEMA)
    return pl.concat(parts, how="vertical_relaxed").filter(pl.col("score").is_finite())


def _params(fn: object) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def _known_mask(gen: Recommender, customers: np.ndarray) -> np.ndarray:
    if getattr(gen, "customer_ids_", None) is None:
        return np.ones(len(customers), dtype=bool)
    return gen.knows(customers)


def widen(long: pl.DataFrame, generator_names: Sequence[str], reason_of: Mapping[str, str]) -> pl.DataFrame:
    """One row per (customer, item): ``score_<gen>``, ``rank_<gen>``, ``n_gens``, and the explanation
    (reason type and source) of the generator that ranked the item best.

    Rows come in the order of each pair's first appearance in ``long``.  Why integer keys: at ~170
    candidates per customer a batch of 10k customers is ~1.7M long rows; grouping them by two string
    columns with fourteen filtered aggregations took 4 s, while coding the pairs once (two joins) and
    scattering each generator's columns with numpy takes a fraction of that.
    """
    names = list(generator_names)
    if long.height == 0:
        base = pl.DataFrame(schema={"customer_id": pl.String, "item_id": pl.String})
        cols = {f"{kind}_{g}": pl.Float32 for g in names for kind in ("score", "rank")}
        return base.with_columns(
            pl.lit(None, pl.String).alias("reason_gen"), pl.lit(None, pl.String).alias("source_item_id"),
            pl.lit(None, pl.Datetime("us")).alias("source_ts"), pl.lit(None, pl.Float32).alias("n_gens"),
            *[pl.lit(None, dt).alias(c) for c, dt in cols.items()],
        ).with_columns(pl.col("reason_gen").replace_strict(dict(reason_of), default="popular").alias("reason_type"))
    priority = {g: i for i, g in enumerate(names)}
    customers = long.select("customer_id").unique(maintain_order=True).with_row_index("_c")
    items = long.select("item_id").unique(maintain_order=True).with_row_index("_i")
    coded = (
        long.join(customers, on="customer_id", how="left", maintain_order="left")
        .join(items, on="item_id", how="left", maintain_order="left")
        .with_columns(
            (pl.col("_c").cast(pl.Int64) * items.height + pl.col("_i").cast(pl.Int64)).alias("_k"),
            pl.col("gen").replace_strict(priority, default=len(priority), return_dtype=pl.Int32).alias("_prio"),
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"),
        )
    )
    best = (
        coded.sort("_k", "rank", "_prio")
        .group_by("_k", maintain_order=True)
        .agg(
            pl.col("customer_id").first(), pl.col("item_id").first(),
            pl.col("gen").first().alias("reason_gen"),
            pl.col("reason").first().alias("_reason"),
            pl.col("source_item_id").drop_nulls().first(),
            pl.col("source_ts").drop_nulls().first(),
            pl.col("gen").n_unique().cast(pl.Float32).alias("n_gens"),
            pl.col("_row").min().alias("_first"),
        )
        .sort("_first")
    )
    # every long row's output position: searchsorted of its key among the output keys
    out_keys = best["_k"].to_numpy()
    by_key = np.argsort(out_keys, kind="stable")
    row_keys = coded["_k"].to_numpy()
    slot = by_key[np.searchsorted(out_keys[by_key], row_keys)]
    gen_of = coded["_prio"].to_numpy()
    score = coded["score"].to_numpy().astype(np.float32)
    rank = coded["rank"].to_numpy().astype(np.float32)
    columns = []
    for g, name in enumerate(names):
        mine = gen_of == g
        s_col = np.full(best.height, -np.inf, dtype=np.float32)
        r_col = np.full(best.height, np.inf, dtype=np.float32)
        np.maximum.at(s_col, slot[mine], score[mine])
        np.minimum.at(r_col, slot[mine], rank[mine])
        proposed = np.zeros(best.height, dtype=bool)
        proposed[slot[mine]] = True
        columns += [
            pl.Series(f"score_{name}", s_col).set(pl.Series(~proposed), None),
            pl.Series(f"rank_{name}", r_col).set(pl.Series(~proposed), None),
        ]
    out = best.select("customer_id", "item_id", "reason_gen", "_reason", "source_item_id", "source_ts",
                      "n_gens").with_columns(
        *columns,
        pl.coalesce("_reason", pl.col("reason_gen").replace_strict(dict(reason_of), default="popular"))
        .alias("reason_type"),
    ).drop("_reason")
    sourced = pl.col("reason_type").is_in(list(SOURCED_REASONS))
    return out.with_columns(
        pl.when(sourced).then(pl.col("source_item_id")).otherwise(None).alias("source_item_id"),
        pl.when(sourced).then(pl.col("source_ts")).otherwise(None).alias("source_ts"),
    )

"""Exact ranking metrics over *served* top-K lists, vectorised with polars.

Why this module and not a library: the numbers decide which model is promoted, so their
definitions must be written down, exact (no sampled negatives: the whole catalogue competes) and
computed on the list a customer actually saw (``customer_id, rank, item_id`` — the shape
``recsys recommend`` writes, after business rules), for every customer who bought something.

Who counts
    Every customer with at least one purchase in the test window (optionally intersected with
    ``customers=``, e.g. ``split.known_customers``).  A customer without a served list scores 0 on
    every ranking metric and is counted in ``n_without_recs`` — missing recommendations are
    failures, never silently dropped.  In the ``new`` and ``category`` variants a customer whose
    relevant set is empty (bought only things they had bought before) has nothing to find and is
    left out of that variant's averages; ``n_customers`` says how many remained.

Variants (what counts as a hit)
    ``all``       items bought in the test window;
    ``new``       items bought in the test window that the customer never bought before the cut-off;
    ``category``  categories bought in the test window for the first time; the served list is reduced
                  to its ordered distinct categories (first occurrence kept, unknown categories
                  skipped) and scored with the same formulas.  MAP and recall are the meaningful
                  numbers here; precision still divides by K items.

Per-customer formulas (binary relevance, ``rel(r)`` = 1 if the item at position r is relevant,
``R`` = relevant set, positions r = 1..min(K, list length))
    AP@K        Σ_r P@r · rel(r) / min(K, |R|)
    NDCG@K      Σ_r rel(r) / log2(r + 1)  ÷  Σ_{i ≤ min(K, |R|)} 1 / log2(i + 1)
    Recall@K    hits / |R|
    Precision@K hits / K      (a list shorter than K is not rewarded for being short)
    HitRate@K   1 if hits > 0 else 0
The reported value is the mean over the customers who count (MAP@K = mean AP@K, …).

List-level metrics (from the top-K lists of the customers who count, one value per row)
    coverage   distinct recommended items / catalogue size (``n_catalogue``, default: the number of
               items in ``items``); null when the catalogue size is unknown;
    diversity  intra-list category diversity: mean over customers of
               (distinct categories in the list / list length); an item without a category counts
               as one shared "unknown" category; null without category data;
    novelty    mean over customers of the list's mean self-information −log2 p(i), where
               p(i) = (train customers who bought i + 1) / (train customers + 1) — add-one smoothing
               so an item nobody bought in train gets the largest finite novelty; null without train.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

from recsys.dataset import Dataset
from recsys.evaluation import _ground_truth as gt
from recsys.exceptions import ConfigError, SchemaError

__all__ = [
    "METRIC_COLUMNS",
    "evaluate",
    "evaluate_by_group",
    "per_customer_metrics",
    "precision_recall_curve",
    "recommendations_frame",
]

#: Columns of ``evaluate`` (``evaluate_by_group`` puts ``group`` first).
METRIC_COLUMNS: tuple[str, ...] = (
    "variant",
    "k",
    "n_customers",
    "n_without_recs",
    "map",
    "ndcg",
    "recall",
    "precision",
    "hit_rate",
    "coverage",
    "diversity",
    "novelty",
)
_RANKING = ("ap", "ndcg", "recall", "precision", "hit")


# --------------------------------------------------------------------------- the core
def _idcg(k: int) -> np.ndarray:
    """``out[m]`` = ideal DCG of m relevant items at the top (m = 0..k)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])


def _score(keys: pl.DataFrame, rel: pl.DataFrame, k: int) -> pl.DataFrame:
    """Per-customer ranking metrics for every customer in ``rel`` (customers without a list score 0).

    ``keys``: ``(customer_id, pos, key)``, ``pos`` 1-based and ≤ k; ``rel``: distinct ``(customer_id, key)``.
    """
    n_rel = rel.group_by("customer_id").agg(n_relevant=pl.len().cast(pl.Int64))
    hits = (
        keys.join(n_rel.select("customer_id"), on="customer_id", how="semi")
        .join(rel.with_columns(hit=pl.lit(1, pl.Int64)), on=["customer_id", "key"], how="left")
        .with_columns(pl.col("hit").fill_null(0))
        .sort("customer_id", "pos")
        .with_columns(cum=pl.col("hit").cum_sum().over("customer_id"))
        .group_by("customer_id")
        .agg(
            n_hits=pl.col("hit").sum(),
            ap_sum=(pl.col("hit") * pl.col("cum") / pl.col("pos")).sum(),
            dcg=(pl.col("hit") / (pl.col("pos") + 1).log(2)).sum(),
        )
    )
    out = n_rel.join(hits, on="customer_id", how="left").with_columns(
        pl.col("n_hits").fill_null(0), pl.col("ap_sum").fill_null(0.0), pl.col("dcg").fill_null(0.0)
    )
    ideal = _idcg(k)[np.minimum(out["n_relevant"].to_numpy(), k)]
    return out.with_columns(
        ap=pl.col("ap_sum") / pl.min_horizontal("n_relevant", pl.lit(k)),
        ndcg=pl.col("dcg") / pl.Series(ideal),
        recall=pl.col("n_hits") / pl.col("n_relevant"),
        precision=pl.col("n_hits") / k,
        hit=(pl.col("n_hits") > 0).cast(pl.Float64),
    ).select("customer_id", "n_relevant", "n_hits", *_RANKING)


class _Inputs:
    """Everything the metrics need, normalised once per call."""

    def __init__(
        self,
        recs: pl.DataFrame,
        test: Dataset | pl.DataFrame,
        *,
        train: Dataset | pl.DataFrame | None,
        items: pl.DataFrame | None,
        k: int,
        variants: tuple[str, ...],
        customers: Iterable[str] | pl.Series | None,
    ) -> None:
        self.k = gt.check_k("k", k)
        self.variants = variants
        self.items = gt.catalogue(items, test)
        self.train_p = gt.purchases("train", train) if train is not None else None
        needs_train = [v for v in variants if v in ("new", "category")]
        if needs_train and self.train_p is None:
            raise ConfigError(
                f"Variant(s) {needs_train} need the purchases before the cut-off: pass train=split.train "
                "(or use variants=('all',))."
            )
        if "category" in variants and not gt.has_categories(self.items):
            raise ConfigError(
                "Variant 'category' needs item categories: pass items= with a non-null 'category' column "
                "(or a test Dataset whose catalogue has categories)."
            )
        test_p = gt.purchases("test", test)
        allowed = gt.customer_filter(customers)
        if allowed is not None:
            test_p = test_p.filter(pl.col("customer_id").is_in(allowed.implode()))
        self.test_p = test_p
        #: customers who count: active in the test window (∩ ``customers``)
        self.active = test_p.select("customer_id").unique()
        self.lists = gt.served(recs, self.k).join(self.active, on="customer_id", how="semi")
        self.with_recs = self.lists.select("customer_id").unique().with_columns(has_recs=pl.lit(True))
        self._relevant: dict[str, pl.DataFrame] = {}
        #: train purchases of the customers who count: all the "new" and "category" variants look at
        self.train_active = (
            self.train_p.join(self.active, on="customer_id", how="semi") if self.train_p is not None else None
        )

    def relevant(self, variant: str) -> pl.DataFrame:
        if variant not in self._relevant:
            self._relevant[variant] = gt.relevant(variant, self.test_p, self.train_active, self.items)
        return self._relevant[variant]

    def per_customer(self, k: int | None = None) -> pl.DataFrame:
        """Long frame of per-customer ranking metrics over all variants (optionally cut at ``k`` ≤ self.k)."""
        kk = self.k if k is None else k
        frames = []
        for variant in self.variants:
            keys = gt.served_keys(variant, self.lists, self.items)
            if kk < self.k:
                keys = keys.filter(pl.col("item_pos") <= kk)
            rel = self.relevant(variant)
            scored = _score(keys.select("customer_id", "pos", "key"), rel, kk)
            frames.append(scored.with_columns(variant=pl.lit(variant)))
        return (
            pl.concat(frames)
            .join(self.with_recs, on="customer_id", how="left")
            .with_columns(pl.col("has_recs").fill_null(False))
            .select("customer_id", "variant", "n_relevant", "n_hits", "has_recs", *_RANKING)
        )

    def list_stats(self) -> pl.DataFrame:
        """Per customer with a list: ``(customer_id, diversity, novelty)`` (null where not computable)."""
        lists = self.lists
        if gt.has_categories(self.items):
            assert self.items is not None
            div = (
                lists.join(self.items, on="item_id", how="left")
                .group_by("customer_id")
                .agg(diversity=pl.col("category").n_unique() / pl.len())
            )
        else:
            div = lists.select("customer_id").unique().with_columns(diversity=pl.lit(None, pl.Float64))
        if self.train_p is not None:
            served_items = lists["item_id"].unique().implode()
            buyers = (
                self.train_p.filter(pl.col("item_id").is_in(served_items))
                .group_by("item_id")
                .agg(n=pl.col("customer_id").n_unique())
            )
            n_train = self.train_p["customer_id"].n_unique()
            nov = (
                lists.join(buyers, on="item_id", how="left")
                .with_columns(info=-(((pl.col("n").fill_null(0) + 1) / (n_train + 1)).log(2)))
                .group_by("customer_id")
                .agg(novelty=pl.col("info").mean())
            )
        else:
            nov = lists.select("customer_id").unique().with_columns(novelty=pl.lit(None, pl.Float64))
        return div.join(nov, on="customer_id", how="full", coalesce=True)


def _aggregate(
    inp: _Inputs,
    per_customer: pl.DataFrame,
    membership: pl.DataFrame,
    skeleton: pl.DataFrame,
    n_catalogue: int | None,
) -> pl.DataFrame:
    """Means per ``(group, variant)``; ``membership``: (customer_id, group) for every active customer.

    ``skeleton`` lists the ``group`` values to report (every one gets a row per variant, even with no
    customers: then counts are 0 and metrics null).
    """
    pc = per_customer.join(membership, on="customer_id", how="left")
    ranking = pc.group_by("group", "variant").agg(
        n_customers=pl.len().cast(pl.Int64),
        n_without_recs=(~pl.col("has_recs")).sum().cast(pl.Int64),
        map=pl.col("ap").mean(),
        ndcg=pl.col("ndcg").mean(),
        recall=pl.col("recall").mean(),
        precision=pl.col("precision").mean(),
        hit_rate=pl.col("hit").mean(),
    )
    stats = inp.list_stats().join(membership, on="customer_id", how="left")
    listing = stats.group_by("group").agg(
        diversity=pl.col("diversity").mean(), novelty=pl.col("novelty").mean()
    )
    cover = (  # groups with active customers only: a group nobody in it counts for gets null coverage
        membership.join(inp.lists, on="customer_id", how="left")
        .group_by("group")
        .agg(n_items=pl.col("item_id").drop_nulls().n_unique())
    )
    variants = pl.DataFrame(
        {"variant": list(inp.variants), "_order": list(range(len(inp.variants)))},
        schema={"variant": pl.String, "_order": pl.Int64},
    )
    coverage = (pl.col("n_items") / n_catalogue) if n_catalogue else pl.lit(None, pl.Float64)
    return (
        skeleton.join(variants, how="cross")
        .join(ranking, on=["group", "variant"], how="left", nulls_equal=True)
        .join(listing, on="group", how="left", nulls_equal=True)
        .join(cover, on="group", how="left", nulls_equal=True)
        .with_columns(
            pl.lit(inp.k, pl.Int64).alias("k"),
            pl.col("n_customers").fill_null(0),
            pl.col("n_without_recs").fill_null(0),
            coverage.cast(pl.Float64).alias("coverage"),
        )
        .sort("group", "_order", nulls_last=True)
        .select("group", *METRIC_COLUMNS)
    )


def _n_catalogue(n_catalogue: int | None, inp: _Inputs) -> int | None:
    if n_catalogue is not None:
        return gt.check_k("n_catalogue", n_catalogue)
    return inp.items.height if inp.items is not None and inp.items.height else None


# --------------------------------------------------------------------------- public API
def per_customer_metrics(
    recs: pl.DataFrame,
    test: Dataset | pl.DataFrame,
    *,
    train: Dataset | pl.DataFrame | None = None,
    items: pl.DataFrame | None = None,
    k: int = 12,
    variants: Sequence[str] = ("all", "new"),
    customers: Iterable[str] | pl.Series | None = None,
) -> pl.DataFrame:
    """Per-customer ranking metrics, one row per (customer who counts, variant).

    Useful for paired comparisons (model vs baseline on the same customers) and for custom
    breakdowns.  Parameters as in ``evaluate``.

    Returns
    -------
    polars.DataFrame
        ``customer_id: str, variant: str, n_relevant: i64, n_hits: i64, has_recs: bool,
        ap, ndcg, recall, precision, hit: f64`` sorted by variant (as given), customer_id.
    """
    inp = _Inputs(
        recs, test, train=train, items=items, k=k, variants=gt.check_variants(variants), customers=customers
    )
    order = {v: i for i, v in enumerate(inp.variants)}
    return (
        inp.per_customer()
        .with_columns(_o=pl.col("variant").replace_strict(order, return_dtype=pl.Int64))
        .sort("_o", "customer_id")
        .drop("_o")
    )


def evaluate(
    recs: pl.DataFrame,
    test: Dataset | pl.DataFrame,
    *,
    train: Dataset | pl.DataFrame | None = None,
    items: pl.DataFrame | None = None,
    k: int = 12,
    variants: Sequence[str] = ("all", "new"),
    customers: Iterable[str] | pl.Series | None = None,
    n_catalogue: int | None = None,
) -> pl.DataFrame:
    """Ranking and list-level metrics of served top-``k`` lists against the test window's purchases.

    Parameters
    ----------
    recs
        Served lists: ``customer_id``, ``rank`` (1-based integer; only its order matters) and
        ``item_id``; other columns are ignored.  Padding (``item_id`` null or ``""``) is dropped;
        lists are cut at ``k``.
    test
        The test window: a ``Dataset`` (its purchases; its catalogue is the default ``items``) or an
        interactions frame with ``customer_id``, ``item_id`` (and ``event``, filtered to purchases).
    train
        Purchases before the cut-off; required by the ``new`` and ``category`` variants, and for novelty.
    items
        Catalogue with ``item_id`` and ``category``; for the ``category`` variant, diversity, and the
        default catalogue size.
    k
        List length scored.
    variants
        Any of ``"all"``, ``"new"``, ``"category"`` (see the module docstring).
    customers
        Restrict the evaluation to these customers (e.g. ``split.known_customers``).
    n_catalogue
        Catalogue size for coverage; default ``items.height``.

    Returns
    -------
    polars.DataFrame
        One row per variant, in the order given: ``variant: str, k: i64, n_customers: i64,
        n_without_recs: i64, map, ndcg, recall, precision, hit_rate, coverage, diversity, novelty: f64``.
        The list-level columns (coverage, diversity, novelty) describe the lists of all customers who
        count and repeat on every row.  Metrics are null when no customer counts.

    Examples
    --------
    >>> evaluate(recs, split.test, train=split.train, k=12)                      # doctest: +SKIP
    """
    inp = _Inputs(
        recs, test, train=train, items=items, k=k, variants=gt.check_variants(variants), customers=customers
    )
    membership = inp.active.with_columns(group=pl.lit(None, pl.String))
    skeleton = pl.DataFrame({"group": [None]}, schema={"group": pl.String})
    out = _aggregate(inp, inp.per_customer(), membership, skeleton, _n_catalogue(n_catalogue, inp))
    return out.drop("group")


def evaluate_by_group(
    recs: pl.DataFrame,
    test: Dataset | pl.DataFrame,
    groups: pl.DataFrame,
    *,
    train: Dataset | pl.DataFrame | None = None,
    items: pl.DataFrame | None = None,
    k: int = 12,
    variants: Sequence[str] = ("all", "new"),
    customers: Iterable[str] | pl.Series | None = None,
    n_catalogue: int | None = None,
) -> pl.DataFrame:
    """``evaluate`` per customer group (segment breakdown: activity tiers, cold vs known, RFM, …).

    Parameters
    ----------
    groups
        ``(customer_id, group)``, at most one row per customer (e.g. ``activity_tiers(split.train)``
        or ``cold_vs_known(split.test, split.train)``).  Customers who count but are absent from
        ``groups`` are reported under ``group = null`` so nobody disappears from the totals.
    others
        As in ``evaluate``; list-level metrics are computed within each group.

    Returns
    -------
    polars.DataFrame
        ``group`` (dtype of ``groups["group"]``) followed by the ``evaluate`` columns; one row per
        (group, variant), every group in ``groups`` included (with ``n_customers = 0`` and null
        metrics if none of its customers count), sorted by group (an Enum sorts in category order),
        the null group last.
    """
    if not isinstance(groups, pl.DataFrame) or not {"customer_id", "group"} <= set(groups.columns):
        got = groups.columns if isinstance(groups, pl.DataFrame) else type(groups).__name__
        raise SchemaError(
            f"The 'groups' frame must have columns ['customer_id', 'group']. Got {got}.", source="groups"
        )
    membership = groups.select(pl.col("customer_id").cast(pl.String), "group")
    dup = membership.filter(pl.col("customer_id").is_duplicated())
    if dup.height:
        raise SchemaError(
            f"The 'groups' frame lists a customer more than once, e.g. {dup['customer_id'][0]!r}; "
            "each customer belongs to one group.",
            source="groups",
            column="customer_id",
            count=dup.height,
        )
    inp = _Inputs(
        recs, test, train=train, items=items, k=k, variants=gt.check_variants(variants), customers=customers
    )
    membership = inp.active.join(membership, on="customer_id", how="left")
    skeleton = groups.select("group").filter(pl.col("group").is_not_null()).unique()
    if membership["group"].null_count():
        skeleton = pl.concat(
            [skeleton, pl.DataFrame({"group": [None]}, schema={"group": skeleton.schema["group"]})]
        )
    return _aggregate(inp, inp.per_customer(), membership, skeleton, _n_catalogue(n_catalogue, inp))


def precision_recall_curve(
    recs: pl.DataFrame,
    test: Dataset | pl.DataFrame,
    *,
    ks: Sequence[int] = tuple(range(1, 13)),
    variant: str = "all",
    train: Dataset | pl.DataFrame | None = None,
    items: pl.DataFrame | None = None,
    customers: Iterable[str] | pl.Series | None = None,
) -> pl.DataFrame:
    """Mean Precision@k and Recall@k for each ``k`` in ``ks`` (for plots), one variant.

    Each point equals ``evaluate(..., k=k, variants=(variant,))``'s precision and recall.

    Returns
    -------
    polars.DataFrame
        ``k: i64, precision: f64, recall: f64`` in the order of ``ks``.
    """
    ks = [gt.check_k("ks", int(x) if isinstance(x, np.integer) else x) for x in ks]
    if not ks:
        raise ConfigError("The 'ks' parameter must list at least one k. Got an empty sequence.")
    inp = _Inputs(
        recs,
        test,
        train=train,
        items=items,
        k=max(ks),
        variants=gt.check_variants((variant,)),
        customers=customers,
    )
    rows = []
    for kk in ks:
        pc = inp.per_customer(kk)
        rows.append(
            (kk, pc["precision"].mean() if pc.height else None, pc["recall"].mean() if pc.height else None)
        )
    return pl.DataFrame(
        rows, schema={"k": pl.Int64, "precision": pl.Float64, "recall": pl.Float64}, orient="row"
    )


def recommendations_frame(customer_ids: Sequence[str] | np.ndarray, ids: np.ndarray) -> pl.DataFrame:
    """``Recommender.recommend`` output → the ``(customer_id, rank, item_id)`` frame the metrics read.

    ``ids`` is the ``(len(customer_ids), n)`` id array of ``Recommendations``; padding is dropped.
    """
    ids = np.atleast_2d(np.asarray(ids, dtype=object))
    cust = np.asarray(customer_ids, dtype=object)
    if ids.shape[0] != cust.shape[0]:
        raise ConfigError(
            f"recommendations_frame: {cust.shape[0]} customer ids but {ids.shape[0]} rows of items."
        )
    n = ids.shape[1]
    frame = pl.DataFrame(
        {
            "customer_id": np.repeat(cust, n).tolist(),
            "rank": np.tile(np.arange(1, n + 1, dtype=np.int64), cust.shape[0]),
            "item_id": ids.reshape(-1).tolist(),
        },
        schema={"customer_id": pl.String, "rank": pl.Int64, "item_id": pl.String},
    )
    return frame.filter(pl.col("item_id").is_not_null() & (pl.col("item_id") != gt.PAD_ID))

"""Evaluation on the test window: the served lists, every generator alone and the baselines.

Why in customer batches: at shop scale the test window holds hundreds of thousands of active
customers, each with ~200 candidates and ~45 feature columns; one frame for all of them is tens of
gigabytes (the run that the OOM killer stopped at 24 GB).  Lists are 12 rows per customer, so only the
candidate frames are batched and the (small) lists are concatenated.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from tqdm.auto import tqdm

from recsys.baselines import buy_again_then_popular, model_lists, pad_with_popular, popular_items
from recsys.dataset import Dataset
from recsys.evaluation import activity_tiers, cold_vs_known, evaluate, evaluate_by_group, precision_recall_curve
from recsys.models.popularity import Popularity
from recsys.ranking.hybrid import HybridRecommender
from recsys.segments import segments as segment_table
from recsys.training._rankers import candidate_recall

__all__ = ["Holdout", "evaluate_holdout"]

log = logging.getLogger(__name__)

_EMPTY_LIST = {"customer_id": pl.String, "item_id": pl.String, "rank": pl.Int32}
_REPORTED = ("served", "baseline:buy_again_then_popular", "baseline:popularity_global")


@dataclass
class Holdout:
    """Every number the report shows about one evaluated hybrid."""

    metrics: pl.DataFrame
    segments: pl.DataFrame
    curve: pl.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def _own_list(frame: pl.DataFrame, gen: str, customers: Sequence[str], k: int, popular: list[str]) -> pl.DataFrame:
    """One generator's top-``k`` per customer, by its own rank, padded with popular items."""
    col = f"rank_{gen}"
    if col not in frame.columns:
        own = pl.DataFrame(schema=_EMPTY_LIST)
    else:
        own = (
            frame.filter(pl.col(col).is_not_null())
            .sort(["customer_id", col, "item_id"])
            .group_by("customer_id", maintain_order=True).head(k)
            .select("customer_id", "item_id", pl.col(col).cast(pl.Int32).alias("rank"))
        )
    return pad_with_popular(own, customers, popular, k)


class _Recall:
    """Candidate recall per generator and for the union, over all test purchases and over the
    new-to-customer ones (against the cross-sell pool), summed batch by batch.

    Why per generator: the union's recall bounds the ranker; which generator brings which purchases
    (and at what depth) says where a deeper pool pays and where it only adds rows.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.hits: dict[tuple[str, str], int] = {}
        self.truths = {"all": 0, "new": 0}
        self.rows = {"all": 0, "new": 0}
        self.customers = 0

    def add(self, ranked: pl.DataFrame, ranked_new: pl.DataFrame, truth: pl.DataFrame, bought: pl.DataFrame,
            n_customers: int) -> None:
        self.customers += n_customers
        pairs = {"all": truth, "new": truth.join(bought, on=["customer_id", "item_id"], how="anti")}
        for variant, frame in (("all", ranked), ("new", ranked_new)):
            t = pairs[variant]
            self.truths[variant] += t.height
            self.rows[variant] += frame.height
            got = t.join(frame, on=["customer_id", "item_id"], how="inner")
            self.hits[("union", variant)] = self.hits.get(("union", variant), 0) + got.height
            for name in self.names:
                col = f"rank_{name}"
                n = int(got[col].is_not_null().sum()) if col in got.columns else 0
                self.hits[(name, variant)] = self.hits.get((name, variant), 0) + n

    def table(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name in [*self.names, "union"]:
            out[name] = {v: round(self.hits.get((name, v), 0) / max(self.truths[v], 1), 4) for v in ("all", "new")}
        out["union"].update({f"candidates_per_customer_{v}": round(self.rows[v] / max(self.customers, 1), 1)
                             for v in ("all", "new")})
        out["union"].update({f"test_pairs_{v}": self.truths[v] for v in ("all", "new")})
        return out


def _batched_lists(
    hybrid: HybridRecommender, customers: list[str], truth: pl.DataFrame, k: int, popular: list[str], *,
    batch: int, progress: bool, recall: _Recall | None = None,
) -> tuple[dict[str, pl.DataFrame], tuple[int, int], int]:
    """Served lists and each generator's own lists, computed ``batch`` customers at a time."""
    fallback = pl.DataFrame({"item_id": popular, "score": [float(len(popular) - i) for i in range(len(popular))]})
    now = hybrid.as_of
    parts: dict[str, list[pl.DataFrame]] = {}
    hits = truths = rows = 0
    pairs = truth.select("customer_id", "item_id").unique()
    own = [g for g in hybrid.generators if hybrid.candidates.get(g, 0) >= k]
    steps = range(0, len(customers), batch)
    for start in tqdm(steps, desc="served lists", unit="batch", disable=not progress or len(steps) < 2,
                      leave=False):
        chunk = customers[start:start + batch]
        ranked = hybrid.rank(chunk, now)
        ranked_new = hybrid.rank(chunk, now, new_only=True)
        got = {
            "served": hybrid.finalize(ranked, chunk, k, now=now, fallback=fallback),
            "served_new_only": hybrid.finalize(ranked_new, chunk, k, now=now, fallback=fallback,
                                               exclude_bought=True),
        }
        # Each generator alone: its own top-k is already among the candidates when it proposes ≥ k.
        for name in own:
            got[f"generator:{name}"] = _own_list(ranked, name, chunk, k, popular)
            got[f"generator:{name}:new_only"] = _own_list(ranked_new, name, chunk, k, popular)
        for name, frame in got.items():
            parts.setdefault(name, []).append(frame)
        rows += ranked.height
        h, t = candidate_recall(ranked, truth)
        hits, truths = hits + h, truths + t
        if recall is not None:
            wanted = pl.Series(chunk, dtype=pl.String).implode()
            bought = hybrid.history.of_many(chunk).filter(pl.col("ts") < now).select("customer_id", "item_id").unique()
            recall.add(ranked, ranked_new, pairs.filter(pl.col("customer_id").is_in(wanted)), bought, len(chunk))
        del ranked, ranked_new
    return {name: pl.concat(frames) for name, frames in parts.items()}, (hits, truths), rows


def evaluate_holdout(
    hybrid: HybridRecommender,
    fit_data: Dataset,
    test: Dataset,
    items: pl.DataFrame,
    *,
    k: int,
    baselines: Sequence[str],
    batch: int = 10_000,
    progress: bool = True,
    timer: Any,
    tifu_params: dict[str, Any] | None = None,
) -> Holdout:
    """Score the served list, every generator alone and the baselines on ``test`` (one run, one code).

    ``tifu_params``: the TIFU-KNN baseline's parameters, tuned on the validation window (the
    ``tifu_knn`` baseline is fitted on ``fit_data`` with them); ``None`` leaves that baseline out.
    """
    customers = test.purchases["customer_id"].unique().sort().to_list()
    pop_model = hybrid.generators["popularity"]
    assert isinstance(pop_model, Popularity)
    popular = popular_items(pop_model, k * 3)
    with timer("served lists"):
        recall = _Recall(list(hybrid.generators))
        lists, (hits, truths), rows = _batched_lists(hybrid, customers, test.purchases, k, popular,
                                                     batch=batch, progress=progress, recall=recall)
    with timer("baselines"):
        glob_top = popular_items(Popularity(half_life_days=None).fit(fit_data), k * 3)
        empty = pl.DataFrame(schema=_EMPTY_LIST)
        baseline_lists = {
            "popularity_global": pad_with_popular(empty, customers, glob_top, k),
            "popularity_decayed": pad_with_popular(empty, customers, popular, k),
            "buy_again_then_popular": buy_again_then_popular(fit_data, customers, k, popular),
        }
        if tifu_params is not None and "tifu_knn" in baselines:
            from recsys.models.tifu_knn import TIFUKNN

            tifu = TIFUKNN(**tifu_params).fit(fit_data)
            baseline_lists["tifu_knn"] = model_lists(tifu, customers, k, popular)
            baseline_lists["tifu_knn:new_only"] = model_lists(tifu, customers, k, popular, exclude_bought=True)
            del tifu
        for name, gen in hybrid.generators.items():
            if f"generator:{name}" not in lists:  # proposes fewer than k candidates: ask it directly
                lists[f"generator:{name}"] = model_lists(gen, customers, k, popular)
                lists[f"generator:{name}:new_only"] = model_lists(gen, customers, k, popular, exclude_bought=True)
        for name in baselines:
            if name in baseline_lists:
                lists[f"baseline:{name}"] = baseline_lists[name]
                if f"{name}:new_only" in baseline_lists:
                    lists[f"baseline:{name}:new_only"] = baseline_lists[f"{name}:new_only"]
            elif f"generator:{name}" in lists:
                lists[f"baseline:{name}"] = lists[f"generator:{name}"]
            else:
                log.warning("baseline %r is neither a baseline nor a fitted generator: left out", name)
        # The report and the promotion table compare against these three: always evaluate them.
        for name in ("buy_again_then_popular", "popularity_global"):
            lists.setdefault(f"baseline:{name}", baseline_lists[name])
    variants = ("all", "new", "category") if fit_data.has_categories else ("all", "new")
    with timer("evaluate"):
        rows_m = []
        for name, recs in lists.items():
            m = evaluate(recs, test, train=fit_data, items=items, k=k, variants=variants)
            rows_m.append(m.with_columns(pl.lit(name).alias("model")))
        metrics = pl.concat(rows_m, how="diagonal_relaxed").select("model", pl.exclude("model"))
        groupings = {"activity": activity_tiers(fit_data), "cold_vs_known": cold_vs_known(test, fit_data)}
        # value segment (RFM) and lifecycle stage at the cut-off: does the served list serve the valuable
        # and the lapsing customers, not only the average one?
        seg_table = segment_table(fit_data)
        for column in ("value_segment", "lifecycle"):
            groupings[column] = seg_table.select("customer_id", pl.col(column).alias("group"))
        seg_rows = []
        for name in _REPORTED:
            for grouping, groups in groupings.items():
                seg = evaluate_by_group(lists[name], test, groups, train=fit_data, items=items, k=k,
                                        variants=("all", "new"))
                seg_rows.append(seg.with_columns(pl.lit(name).alias("model"), pl.lit(grouping).alias("grouping"),
                                                 pl.col("group").cast(pl.String)))
        segments = pl.concat(seg_rows, how="diagonal_relaxed")
        curve = pl.concat([
            precision_recall_curve(lists[name], test, ks=range(1, k + 1), train=fit_data)
            .with_columns(pl.lit(name).alias("model"))
            for name in _REPORTED
        ])
    info = {
        "test_customers": len(customers),
        "candidate_recall": round(hits / max(truths, 1), 4),
        "candidates_per_customer": round(rows / max(1, len(customers)), 1),
        "candidate_recall_table": recall.table(),
    }
    return Holdout(metrics, segments, curve, info)

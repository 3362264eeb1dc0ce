"""The training pipeline: split → fit every component → train the ranker → evaluate → bundle.

Why two fits: the ranker must learn from a window its generators have not seen (labels = what
customers bought in the validation week, features from generators fitted before it), and the test
window must be unseen by *everything*.  So generators are fitted on data before the validation
cut-off to train the ranker, then refitted on all data before the test cut-off; the evaluated
components are exactly the ones saved in the bundle, so its metrics describe the artefact itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from tqdm.auto import tqdm

from recsys.baselines import buy_again_then_popular, model_lists, pad_with_popular, popular_items
from recsys.bundle import Bundle, generator_class, git_sha, library_versions
from recsys.config import TrainConfig
from recsys.data import describe
from recsys.dataset import Dataset
from recsys.evaluation import activity_tiers, cold_vs_known, evaluate, evaluate_by_group, precision_recall_curve
from recsys.exceptions import ModelFitError
from recsys.history import PurchaseHistory
from recsys.models.base import Recommender
from recsys.models.popularity import Popularity
from recsys.ranking._features import ItemStats
from recsys.ranking.hybrid import HybridRecommender, fit_ranker, label_candidates
from recsys.split import Split, temporal_split

__all__ = ["TrainResult", "train", "fit_generators", "candidate_recall"]

log = logging.getLogger(__name__)
VARIANTS = ("all", "new", "category")


@dataclass
class TrainResult:
    bundle: Bundle
    metrics: pl.DataFrame  # model, variant, k, n_customers, map, ndcg, recall, precision, hit_rate, …
    segments: pl.DataFrame  # model, group, variant, metrics…
    curve: pl.DataFrame  # k, precision, recall (served list)
    info: dict[str, Any] = field(default_factory=dict)

    def headline(self, metric: str = "all.map", model: str = "served") -> float | None:
        variant, name = metric.split(".", 1)
        row = self.metrics.filter((pl.col("model") == model) & (pl.col("variant") == variant))
        return None if row.height == 0 else row[name][0]


class _Timer:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.stages[name] = round(self.stages.get(name, 0.0) + time.perf_counter() - t0, 3)
        log.info("stage %-22s %7.2fs", name, time.perf_counter() - t0)


def fit_generators(
    data: Dataset, cfg: TrainConfig, *, timer: _Timer | None = None, label: str = "", progress: bool = True
) -> tuple[dict[str, Recommender], dict[str, str]]:
    """Fit every enabled generator; ones that cannot apply (e.g. no categories) are skipped with a note."""
    fitted: dict[str, Recommender] = {}
    skipped: dict[str, str] = {}
    specs = cfg.enabled_generators()
    bar = tqdm(specs.items(), desc=f"fit generators{label}", disable=not progress, leave=False)
    for name, spec in bar:
        bar.set_postfix_str(name)
        cls = generator_class(name)
        params = dict(spec.params)
        if "random_state" in cls._param_names() and "random_state" not in params:
            params["random_state"] = cfg.seed
        t0 = time.perf_counter()
        try:
            fitted[name] = cls(**params).fit(data)
        except ModelFitError as exc:
            skipped[name] = str(exc)
            log.warning("generator %s skipped: %s", name, exc)
            continue
        if timer is not None:
            timer.stages[f"fit{label}:{name}"] = round(time.perf_counter() - t0, 3)
    return fitted, skipped


def _own_list(frame: pl.DataFrame, gen: str, customers: list[str], k: int, popular: list[str]) -> pl.DataFrame:
    """One generator's top-``k`` per customer, by its own rank, padded with popular items."""
    col = f"rank_{gen}"
    if col not in frame.columns:
        own = pl.DataFrame(schema={"customer_id": pl.String, "item_id": pl.String, "rank": pl.Int32})
    else:
        own = (
            frame.filter(pl.col(col).is_not_null())
            .sort(["customer_id", col, "item_id"])
            .group_by("customer_id", maintain_order=True).head(k)
            .select("customer_id", "item_id", pl.col(col).cast(pl.Int32).alias("rank"))
        )
    return pad_with_popular(own, customers, popular, k)


def candidate_recall(frame: pl.DataFrame, future: pl.DataFrame) -> float:
    """Share of (customer, item) purchases in ``future`` present among the candidates: the ranker's ceiling."""
    truth = future.select("customer_id", "item_id").unique()
    customers = frame.select("customer_id").unique()
    truth = truth.join(customers, on="customer_id", how="semi")
    if truth.height == 0:
        return 0.0
    hit = truth.join(frame.select("customer_id", "item_id"), on=["customer_id", "item_id"], how="semi").height
    return hit / truth.height


def _label_window(split: Split, w: int, days: float) -> tuple[Dataset, Dataset] | None:
    """Ranker window ``w`` (0 = the validation window just before the test cut-off, 1 = the one before
    it, …): (purchases before it, purchases in it)."""
    assert split.validation_cutoff is not None and split.validation is not None
    if w == 0:
        return split.train, split.validation
    end = split.validation_cutoff - timedelta(days=days) * (w - 1)
    start = end - timedelta(days=days)
    inter = split.train.interactions
    before = split.train.with_interactions(inter.filter(pl.col("ts") < start))
    inside = split.train.with_interactions(inter.filter((pl.col("ts") >= start) & (pl.col("ts") < end)))
    if before.purchases.height == 0 or inside.purchases.height == 0:
        return None
    return before, inside


def _active(window: Dataset, known: frozenset[str] | None = None) -> list[str]:
    ids = window.purchases["customer_id"].unique().sort().to_list()
    return [c for c in ids if known is None or c in known]


def train(data: Dataset, cfg: TrainConfig, *, progress: bool = True,
          on_stage: Callable[[str], None] | None = None) -> TrainResult:
    """Run the whole pipeline on ``data``; returns the bundle and every number the report shows."""
    timer = _Timer()
    t_start = time.perf_counter()
    with timer("split"):
        split: Split = temporal_split(
            data,
            cutoff=cfg.split.cutoff,
            holdout_days=cfg.split.holdout_days,
            validation_days=cfg.split.validation_days,
        )
    log.info("%r", split)
    assert split.validation is not None and split.validation_cutoff is not None
    candidates = {name: spec.candidates for name, spec in cfg.enabled_generators().items()}
    new_candidates = {name: spec.new_candidates if spec.new_candidates is not None else spec.candidates
                      for name, spec in cfg.enabled_generators().items()}

    # -- stage A: generators before the validation window, ranker trained on it ---------------
    ranker = ranker_new = None
    ranker_info: dict[str, Any] = {"kind": cfg.ranker.kind}
    if cfg.ranker.kind == "gbdt":
        frames, frames_new = [], []
        names: list[str] = []
        for w in range(cfg.ranker.windows):
            window = _label_window(split, w, cfg.split.validation_days)
            if window is None:
                log.warning("ranker window %d skipped: no purchases before it or in it", w + 1)
                continue
            before, labels_ds = window
            tag = "A" if w == 0 else f"A{w + 1}"
            with timer(f"fit generators ({tag})"):
                gens_a, _ = fit_generators(before, cfg, timer=timer, label=tag, progress=progress)
            hybrid_a = HybridRecommender(gens_a, ItemStats().fit(before), PurchaseHistory(before.interactions),
                                         candidates={k: v for k, v in candidates.items() if k in gens_a},
                                         new_candidates={k: v for k, v in new_candidates.items() if k in gens_a})
            known = frozenset(before.interactions["customer_id"].unique().to_list())
            val_customers = _active(labels_ds, known)
            if cfg.ranker.max_customers and len(val_customers) > cfg.ranker.max_customers:
                import random

                val_customers = sorted(random.Random(cfg.seed + w).sample(val_customers, cfg.ranker.max_customers))
            with timer(f"ranker candidates ({tag})"):
                frame = hybrid_a.candidate_frame(val_customers, now=hybrid_a.reference_time)
                frame_new = hybrid_a.candidate_frame(val_customers, now=hybrid_a.reference_time, new_only=True)
                frame_new = frame_new.filter(pl.col("ci_count") == 0)
            names = names or hybrid_a.features
            if w == 0:
                ranker_info["validation_candidate_recall"] = round(candidate_recall(frame, labels_ds.purchases), 4)
                ranker_info["candidates_per_customer"] = round(frame.height / max(1, len(val_customers)), 1)
            # a customer's rows in two windows are two ranking queries: keep them apart
            suffix = pl.col("customer_id") + f"#w{w}"
            frames.append(frame.with_columns(pl.Series("_y", label_candidates(frame, labels_ds.purchases)))
                          .with_columns(suffix))
            frames_new.append(frame_new.with_columns(
                pl.Series("_y", label_candidates(frame_new, labels_ds.purchases))).with_columns(suffix))
            del hybrid_a, gens_a, frame, frame_new
        ranker_info["windows"] = len(frames)
        with timer("fit ranker"):
            kw = dict(max_iter=cfg.ranker.max_iter, learning_rate=cfg.ranker.learning_rate,
                      max_leaf_nodes=cfg.ranker.max_leaf_nodes,
                      negatives_per_positive=cfg.ranker.negatives_per_positive, random_state=cfg.seed)
            try:
                if not frames:
                    raise ValueError("no label window with purchases before and in it")
                stacked = pl.concat(frames, how="diagonal_relaxed")
                ranker, info = fit_ranker(stacked.drop("_y"), stacked["_y"].to_numpy(), names, bags=cfg.ranker.bags,
                                          **kw)
                ranker_info.update(info)
                stacked = pl.concat(frames_new, how="diagonal_relaxed")
                ranker_new, info_new = fit_ranker(stacked.drop("_y"), stacked["_y"].to_numpy(), names,
                                                  bags=cfg.ranker.new_bags or cfg.ranker.bags, **kw)
                ranker_info["new_only"] = info_new
            except ValueError as exc:
                log.warning("ranker not trained (%s); using the reciprocal-rank blend", exc)
                ranker_info["error"] = str(exc)
        del frames, frames_new

    # -- stage B: everything before the test cut-off ------------------------------------------
    fit_data = split.train.with_interactions(
        pl.concat([split.train.interactions, split.validation.interactions])
    )
    with timer("fit generators (B)"):
        gens, skipped = fit_generators(fit_data, cfg, timer=timer, label="B", progress=progress)
    with timer("item stats + history"):
        stats = ItemStats().fit(fit_data)
        history = PurchaseHistory(fit_data.interactions)
    hybrid = HybridRecommender(gens, stats, history, candidates={k: v for k, v in candidates.items() if k in gens},
                               new_candidates={k: v for k, v in new_candidates.items() if k in gens},
                               ranker=ranker, ranker_new=ranker_new)

    # -- evaluation on the test window ---------------------------------------------------------
    k = cfg.k
    test_customers = _active(split.test)
    pop_model: Popularity = gens["popularity"]  # type: ignore[assignment]
    popular = popular_items(pop_model, k * 3)
    fallback = pl.DataFrame({"item_id": popular, "score": [float(len(popular) - i) for i in range(len(popular))]})
    lists: dict[str, pl.DataFrame] = {}
    with timer("served lists"):
        now = hybrid.reference_time
        ranked = hybrid.rank(test_customers, now)
        lists["served"] = hybrid.finalize(ranked, test_customers, k, now=now, fallback=fallback)
        ranked_new = hybrid.rank(test_customers, now, new_only=True)
        lists["served_new_only"] = hybrid.finalize(ranked_new, test_customers, k, now=now, fallback=fallback,
                                                   exclude_bought=True)
    test_recall = candidate_recall(ranked, split.test.purchases)
    with timer("baselines"):
        glob = Popularity(half_life_days=None).fit(fit_data)
        glob_top = popular_items(glob, k * 3)
        baseline_lists = {
            "popularity_global": pad_with_popular(pl.DataFrame(schema={"customer_id": pl.String, "item_id": pl.String,
                                                                        "rank": pl.Int32}), test_customers, glob_top, k),
            "popularity_decayed": pad_with_popular(pl.DataFrame(schema={"customer_id": pl.String, "item_id": pl.String,
                                                                         "rank": pl.Int32}), test_customers, popular, k),
            "buy_again_then_popular": buy_again_then_popular(fit_data, test_customers, k, popular),
        }
        # Each generator alone: its own top-k is already among the candidates (every generator proposes
        # ≥ k), so read it off the candidate frames instead of asking every generator again.
        for name in gens:
            if hybrid.candidates.get(name, 0) >= k:
                lists[f"generator:{name}"] = _own_list(ranked, name, test_customers, k, popular)
                lists[f"generator:{name}:new_only"] = _own_list(ranked_new, name, test_customers, k, popular)
            else:
                lists[f"generator:{name}"] = model_lists(gens[name], test_customers, k, popular)
                lists[f"generator:{name}:new_only"] = model_lists(gens[name], test_customers, k, popular,
                                                                  exclude_bought=True)
        for name in cfg.baselines:
            if name in baseline_lists:
                lists[f"baseline:{name}"] = baseline_lists[name]
            elif name in gens:
                lists[f"baseline:{name}"] = lists[f"generator:{name}"]
    with timer("evaluate"):
        rows = []
        for name, recs in lists.items():
            m = evaluate(recs, split.test, train=fit_data, items=data.items, k=k, variants=VARIANTS)
            rows.append(m.with_columns(pl.lit(name).alias("model")))
        metrics = pl.concat(rows, how="diagonal_relaxed").select("model", pl.exclude("model"))
        groupings = {
            "activity": activity_tiers(fit_data),
            "cold_vs_known": cold_vs_known(split.test, fit_data),
        }
        seg_rows = []
        for name in ("served", "baseline:buy_again_then_popular", "baseline:popularity_global"):
            if name not in lists:
                continue
            for grouping, groups in groupings.items():
                seg = evaluate_by_group(lists[name], split.test, groups, train=fit_data, items=data.items, k=k,
                                        variants=("all", "new"))
                seg_rows.append(seg.with_columns(pl.lit(name).alias("model"), pl.lit(grouping).alias("grouping"),
                                                 pl.col("group").cast(pl.String)))
        segments = pl.concat(seg_rows, how="diagonal_relaxed")
        curve = pl.concat([
            precision_recall_curve(lists[name], split.test, ks=range(1, k + 1), train=fit_data)
            .with_columns(pl.lit(name).alias("model"))
            for name in ("served", "baseline:buy_again_then_popular", "baseline:popularity_global")
        ])

    info = {
        "split": {"cutoff": split.cutoff, "validation_cutoff": split.validation_cutoff,
                  "train_rows": fit_data.interactions.height, "test_rows": split.test.interactions.height,
                  "test_customers": len(test_customers), "known_test_customers":
                      sum(c in split.known_customers for c in test_customers)},
        "ranker": ranker_info,
        "candidate_recall": round(test_recall, 4),
        "candidates_per_customer": round(ranked.height / max(1, len(test_customers)), 1),
        "skipped_generators": skipped,
        "timings": timer.stages,
        "train_seconds": round(time.perf_counter() - t_start, 2),
    }
    headline = _headline(metrics)
    manifest = {
        "created": datetime.now().isoformat(timespec="seconds"),
        "config": cfg.model_dump(mode="json"),
        "data": data.fingerprint(),
        "data_summary": describe(data),
        "metrics": metrics.to_dicts(),
        "headline": headline,
        "info": info,
        "versions": library_versions(),
        "git_sha": git_sha(),
    }
    bundle = Bundle(hybrid, data.items, manifest,
                    tables={"metrics": metrics, "segments": segments, "curve": curve})
    log.info("trained in %.1fs: served all.map@%d=%.4f", info["train_seconds"], k, headline.get("all.map") or 0)
    return TrainResult(bundle, metrics, segments, curve, info)


def _headline(metrics: pl.DataFrame) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for model, prefix in (("served", ""), ("served_new_only", "")):
        for row in metrics.filter(pl.col("model") == model).iter_rows(named=True):
            if model == "served_new_only" and row["variant"] != "new":
                continue
            if model == "served" and row["variant"] == "new":
                continue
            for m in ("map", "ndcg", "recall", "hit_rate"):
                out[f"{prefix}{row['variant']}.{m}"] = row[m]
    return out

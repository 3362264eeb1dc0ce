"""The training pipeline: evaluate on a temporal holdout, then refit on everything and bundle.

Why three fits of the generators: the ranker must learn from a window its generators have not seen
(labels = what customers bought in it, features from generators fitted before it), the test window
must be unseen by *everything* that is evaluated, and the served bundle must know yesterday's
purchases.  So, by default:

1. generators fitted before each label window → the ranker (``_rankers``);
2. generators refitted on everything before the test cut-off → evaluated with that ranker on the
   test window, against the baselines (``_holdout``);
3. generators, item statistics and history refitted on *all* data up to the newest purchase, with the
   evaluated ranker → the served bundle.  Its manifest keeps the evaluation cut-off and metrics
   beside the data end, so "what was measured" and "what is served" are both stated.

``refit=False`` saves the evaluated components themselves (step 3 skipped: experiments that want the
artefact the metrics describe).  ``evaluate=False`` is the fast nightly retrain: the ranker learns from
the latest windows (ending at the newest purchase), generators are fitted once on everything, no test
split; its bundle says it was not evaluated and cannot be promoted over an evaluated one unforced.
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

from recsys._time import newest
from recsys.baselines import tune_tifu_knn
from recsys.bundle import Bundle, generator_class, git_sha, library_versions
from recsys.config import TrainConfig
from recsys.data import describe
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError, ModelFitError
from recsys.history import PurchaseHistory
from recsys.models.base import Recommender
from recsys.ranking._features import ItemStats
from recsys.ranking._cascade import Cascade
from recsys.ranking.hybrid import HybridRecommender
from recsys.segments._relationship import relationship_tables
from recsys.split import temporal_split
from recsys.training._holdout import evaluate_holdout
from recsys.training._rankers import label_windows, train_rankers

__all__ = ["TrainResult", "train", "fit_generators"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run returns: the bundle, the holdout evaluation tables and run information."""

    bundle: Bundle
    metrics: pl.DataFrame  # model, variant, k, n_customers, map, ndcg, recall, precision, hit_rate, …
    segments: pl.DataFrame  # model, group, variant, metrics…
    curve: pl.DataFrame  # k, precision, recall (served list)
    info: dict[str, Any] = field(default_factory=dict)

    def headline(self, metric: str = "all.map", model: str = "served") -> float | None:
        """One metric of one model's lists (``"<variant>.<metric>"``, default the served list's ``all.map``);
        ``None`` when not evaluated."""
        variant, name = metric.split(".", 1)
        if self.metrics.height == 0:
            return None
        row = self.metrics.filter((pl.col("model") == model) & (pl.col("variant") == variant))
        return None if row.height == 0 else row[name][0]


class _Timer:
    """Named stage durations (summed when a stage repeats), logged as each stage ends."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.stages[name] = round(self.stages.get(name, 0.0) + time.perf_counter() - t0, 3)
        rss, peak = _memory_gb()
        log.info("stage %-22s %7.2fs  rss %.2f GB (peak %.2f GB)", name, time.perf_counter() - t0, rss, peak)


def _memory_gb() -> tuple[float, float]:
    """(resident now, peak so far) of this process in GB: at shop scale, memory is the first limit."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * (resource.getpagesize() / 1e9)
    except OSError:  # not Linux: the peak is what we have
        rss = peak
    return rss, peak


def fit_generators(
    data: Dataset, cfg: TrainConfig, *, timer: _Timer | None = None, label: str = "", progress: bool = True,
    sample: bool = False,
) -> tuple[dict[str, Recommender], dict[str, str]]:
    """Fit every enabled generator; ones that cannot apply (e.g. no categories) are skipped with a note.

    ``sample``: the generators will be asked about a sample of the customers only (a ranker window, an
    evaluation), so each class's ``window_params`` apply (e.g. TIFU-KNN searches neighbours on query);
    the configured params still win.
    """
    fitted: dict[str, Recommender] = {}
    skipped: dict[str, str] = {}
    specs = cfg.enabled_generators()
    bar = tqdm(specs.items(), desc=f"fit generators{label}", disable=not progress, leave=False)
    n_purchases = f"{data.purchases.height:,}"  # once: ``purchases`` filters every interaction
    for name, spec in bar:
        bar.set_postfix_str(name)
        cls = generator_class(name)
        params = {**(cls.window_params if sample else {}), **spec.params}
        if "random_state" in cls._param_names() and "random_state" not in params:
            params["random_state"] = cfg.seed
        t0 = time.perf_counter()
        try:
            fitted[name] = cls(**params).fit(data)
        except ModelFitError as exc:
            skipped[name] = str(exc)
            log.warning("generator %s skipped: %s", name, exc)
            continue
        seconds = time.perf_counter() - t0
        if timer is not None:
            timer.stages[f"fit{label}:{name}"] = round(seconds, 3)
        log.info("fitted %-20s on %s purchases in %6.1fs  rss %.2f GB (peak %.2f GB)", name,
                 n_purchases, seconds, *_memory_gb())
    return fitted, skipped


def _hybrid(data: Dataset, gens: dict[str, Recommender], cfg: TrainConfig, **rankers: Any) -> HybridRecommender:
    specs = cfg.enabled_generators()
    return HybridRecommender(
        gens, ItemStats().fit(data), PurchaseHistory(data.interactions),
        candidates={k: v.candidates for k, v in specs.items() if k in gens},
        new_candidates={k: v.new_candidates if v.new_candidates is not None else v.candidates
                        for k, v in specs.items() if k in gens},
        cascade=Cascade(cfg.ranker.cascade_trees, cfg.ranker.cascade_keep) if cfg.ranker.cascade_trees else None,
        **rankers,
    )


def _rankers(upto: Dataset, end: datetime, cfg: TrainConfig, timer: _Timer, progress: bool) -> tuple[Any, Any, dict]:
    if cfg.ranker.kind != "gbdt":
        return None, None, {"kind": cfg.ranker.kind}
    specs = cfg.enabled_generators()

    def fit(before: Dataset, tag: str) -> dict[str, Recommender]:
        return fit_generators(before, cfg, timer=timer, label=tag, progress=progress, sample=True)[0]

    kw = dict(max_iter=cfg.ranker.max_iter, learning_rate=cfg.ranker.learning_rate,
              max_leaf_nodes=cfg.ranker.max_leaf_nodes,
              negatives_per_positive=cfg.ranker.negatives_per_positive, random_state=cfg.seed,
              backend=cfg.ranker.backend, objective=cfg.ranker.objective)
    return train_rankers(
        label_windows(upto, end, cfg.split.validation_days, cfg.ranker.windows), fit,
        candidates={k: v.candidates for k, v in specs.items()},
        new_candidates={k: v.new_candidates if v.new_candidates is not None else v.candidates
                        for k, v in specs.items()},
        ranker_kw=kw, bags=cfg.ranker.bags, new_bags=cfg.ranker.new_bags or cfg.ranker.bags,
        max_customers=cfg.ranker.max_customers, seed=cfg.seed, timer=timer,
    )


def train(data: Dataset, cfg: TrainConfig, *, progress: bool = True, evaluate: bool = True, refit: bool = True,
          on_stage: Callable[[str], None] | None = None) -> TrainResult:
    """Run the whole pipeline on ``data``; returns the bundle and every number the report shows.

    Parameters
    ----------
    evaluate
        Evaluate on the temporal holdout (``cfg.split``) against the baselines.  ``False``: the
        nightly path (ranker on the latest windows, one generator fit on everything, no metrics).
    refit
        After evaluating, refit every component on all data so the bundle knows the newest
        purchases (default).  ``False`` saves the evaluated components (bundle ends at the cut-off).
    """
    timer = _Timer()
    t_start = time.perf_counter()
    if data.purchases.height == 0:
        raise ConfigError(f"Cannot train on dataset {data.source!r}: it has no purchases.")
    data_start, data_end = data.purchases["ts"].min(), newest(data.purchases["ts"])
    empty = pl.DataFrame()
    metrics, segments, curve = empty, empty, empty
    info: dict[str, Any] = {"evaluated": evaluate, "refit": refit or not evaluate}
    skipped: dict[str, str] = {}
    evaluated_hybrid: HybridRecommender | None = None
    if evaluate:
        with timer("split"):
            split = temporal_split(data, cutoff=cfg.split.cutoff, holdout_days=cfg.split.holdout_days,
                                   validation_days=cfg.split.validation_days)
        log.info("%r", split)
        assert split.validation is not None
        fit_data = split.train.with_interactions(pl.concat([split.train.interactions, split.validation.interactions]))
        tifu_params = None
        if "tifu_knn" in cfg.baselines:  # tuned on the validation window: the test window stays unseen
            with timer("tune TIFU-KNN baseline"):
                tuned = tune_tifu_knn(split.train, split.validation, k=cfg.k, seed=cfg.seed, cache_dir=cfg.cache_dir)
            tifu_params = tuned["params"]
            info["tifu_knn_tuning"] = {key: tuned[key] for key in ("params", "map", "customers", "seconds", "cached")}
            info["tifu_knn_tuning"]["window"] = [split.validation_cutoff, split.cutoff]
        ranker, ranker_new, info["ranker"] = _rankers(fit_data, split.cutoff, cfg, timer, progress)
        with timer("fit generators (B)"):
            # served only when not refitting; otherwise asked about the test customers alone
            gens, skipped = fit_generators(fit_data, cfg, timer=timer, label="B", progress=progress, sample=refit)
        with timer("item stats + history"):
            evaluated_hybrid = _hybrid(fit_data, gens, cfg, ranker=ranker, ranker_new=ranker_new)
        del gens
        hold = evaluate_holdout(evaluated_hybrid, fit_data, split.test, data.items, k=cfg.k, baselines=cfg.baselines,
                                batch=cfg.batch_customers, progress=progress, timer=timer, tifu_params=tifu_params)
        metrics, segments, curve = hold.metrics, hold.segments, hold.curve
        info["split"] = {"cutoff": split.cutoff, "validation_cutoff": split.validation_cutoff,
                         "train_rows": fit_data.interactions.height, "test_rows": split.test.interactions.height,
                         "test_customers": hold.info["test_customers"],
                         "known_test_customers": sum(c in split.known_customers for c in
                                                     split.test.purchases["customer_id"].unique().to_list())}
        info["candidate_recall"] = hold.info["candidate_recall"]
        info["candidates_per_customer"] = hold.info["candidates_per_customer"]
        info["candidate_recall_table"] = hold.info["candidate_recall_table"]
        del fit_data, split
    else:
        # the newest purchase belongs to the latest label window: end just after it
        ranker, ranker_new, info["ranker"] = _rankers(data, data_end + timedelta(microseconds=1), cfg, timer,
                                                      progress)
    # The relationship tables need only the data.  Why here: computed after the served generators were
    # fitted, they pushed a full-size H&M run from 15.7 GB to past 21 GB (killed by the OOM killer); the
    # process holds the least between the evaluated and the served generators.
    served = evaluated_hybrid if not refit else None
    del evaluated_hybrid  # when refitting: free the evaluated generators before fitting the served ones
    with timer("relationship KPIs"):  # repeat rate, churn, AOV, CLV per month and cohorts, for the report
        relationship = relationship_tables(data)
    if served is not None:
        hybrid = served
    else:
        with timer("fit generators (all data)"):
            gens, skipped = fit_generators(data, cfg, timer=timer, label="all", progress=progress)
        with timer("item stats + history (all data)"):
            hybrid = _hybrid(data, gens, cfg, ranker=ranker, ranker_new=ranker_new)
    info.update(skipped_generators=skipped, timings=timer.stages,
                train_seconds=round(time.perf_counter() - t_start, 2),
                data_start=data_start, data_end=data_end, fitted_until=hybrid.reference_time,
                evaluation_cutoff=info.get("split", {}).get("cutoff"))
    headline = _headline(metrics) if metrics.height else {}
    manifest = {
        "created": datetime.now().isoformat(timespec="seconds"),
        "config": cfg.model_dump(mode="json"),
        "data": data.fingerprint(),
        "data_summary": describe(data),
        "metrics": metrics.to_dicts(),
        "headline": headline,
        "evaluated": evaluate,
        "evaluation_cutoff": info["evaluation_cutoff"],
        "data_end": data_end,
        "info": info,
        "versions": library_versions(),
        "git_sha": git_sha(),
    }
    tables = {"metrics": metrics, "segments": segments, "curve": curve} if evaluate else {}
    tables.update(relationship)
    bundle = Bundle(hybrid, data.items, manifest, tables=tables)
    log.info("trained in %.1fs: %s; bundle fitted until %s", info["train_seconds"],
             f"served all.map@{cfg.k}={headline.get('all.map') or 0:.4f}" if evaluate else "not evaluated",
             hybrid.reference_time)
    return TrainResult(bundle, metrics, segments, curve, info)


def _headline(metrics: pl.DataFrame) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for model in ("served", "served_new_only"):
        for row in metrics.filter(pl.col("model") == model).iter_rows(named=True):
            if model == "served_new_only" and row["variant"] != "new":
                continue
            if model == "served" and row["variant"] == "new":
                continue
            for m in ("map", "ndcg", "recall", "hit_rate"):
                out[f"{row['variant']}.{m}"] = row[m]
    return out

"""Label windows and the ranker stage: generators fitted before a window, the ranker learns from it.

Why windows cut back from an end date rather than from a ``Split``: the same code trains the ranker for
the evaluated run (windows end at the test cut-off) and for the nightly ``--no-eval`` retrain (windows
end at the newest purchase), so the two cannot drift.  Window 0 ends at ``end``; window ``w`` covers
``[end - (w + 1)·days, end - w·days)``; the generators that propose its candidates see only purchases
before its start, exactly as the served generators see only the past.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from recsys.dataset import Dataset
from recsys.history import PurchaseHistory
from recsys.models.base import Recommender
from recsys.ranking._features import ItemStats
from recsys.ranking._trees import TreeEnsemble
from recsys.ranking.hybrid import HybridRecommender, fit_ranker, label_candidates

__all__ = ["LabelWindow", "label_windows", "train_rankers", "candidate_recall"]

log = logging.getLogger(__name__)

FitGenerators = Callable[[Dataset, str], dict[str, Recommender]]


@dataclass(frozen=True)
class LabelWindow:
    """Purchases ``before`` the window (what generators learn from) and ``inside`` it (the labels)."""

    index: int
    start: datetime
    end: datetime
    before: Dataset
    inside: Dataset


def label_windows(upto: Dataset, end: datetime, days: float, count: int) -> Iterator[LabelWindow]:
    """Yield up to ``count`` windows of ``days`` ending at ``end`` (exclusive), newest first.

    ``upto`` holds the interactions the run may learn from (all before ``end``).  A window without
    purchases before or inside it is skipped with a warning.  Windows are yielded lazily so that a
    big shop holds one window's frames at a time.
    """
    inter = upto.interactions
    for w in range(count):
        w_end = end - timedelta(days=days) * w
        start = w_end - timedelta(days=days)
        before = upto.with_interactions(inter.filter(pl.col("ts") < start))
        inside = upto.with_interactions(inter.filter((pl.col("ts") >= start) & (pl.col("ts") < w_end)))
        if before.purchases.height == 0 or inside.purchases.height == 0:
            log.warning("ranker window %d (%s – %s) skipped: no purchases before it or in it", w + 1, start, w_end)
            continue
        yield LabelWindow(w, start, w_end, before, inside)


def candidate_recall(frame: pl.DataFrame, future: pl.DataFrame) -> tuple[int, int]:
    """(hits, truths): (customer, item) purchases in ``future`` of the customers in ``frame`` that are
    among its candidates, and how many there are — the ranker's ceiling, summable over batches."""
    truth = future.select("customer_id", "item_id").unique()
    customers = frame.select("customer_id").unique()
    truth = truth.join(customers, on="customer_id", how="semi")
    if truth.height == 0:
        return 0, 0
    hit = truth.join(frame.select("customer_id", "item_id"), on=["customer_id", "item_id"], how="semi").height
    return hit, truth.height


def _sample(customers: list[str], cap: int | None, seed: int) -> list[str]:
    """At most ``cap`` customers, a seeded uniform sample: the ranker's cost stops growing with the shop."""
    if cap and len(customers) > cap:
        return sorted(random.Random(seed).sample(customers, cap))
    return customers


def train_rankers(
    windows: Iterator[LabelWindow],
    fit_generators: FitGenerators,
    *,
    candidates: dict[str, int],
    new_candidates: dict[str, int],
    ranker_kw: dict[str, Any],
    bags: int,
    new_bags: int,
    max_customers: int | None,
    seed: int,
    timer: Any,
) -> tuple[TreeEnsemble | None, TreeEnsemble | None, dict[str, Any]]:
    """Fit generators before each window, collect labelled candidates of a customer sample, fit the
    main and the cross-sell ranker; ``(None, None, info)`` when no window yields both labels."""
    frames, frames_new = [], []
    names: list[str] = []
    info: dict[str, Any] = {"kind": "gbdt", "max_customers": max_customers}
    for win in windows:
        tag = "A" if win.index == 0 else f"A{win.index + 1}"
        with timer(f"fit generators ({tag})"):
            gens = fit_generators(win.before, tag)
        known = frozenset(win.before.interactions["customer_id"].unique().to_list())
        active = [c for c in win.inside.purchases["customer_id"].unique().sort().to_list() if c in known]
        sample = _sample(active, max_customers, seed + win.index)
        # the features read the history of the sampled customers only: holding (and sorting) every line's
        # history here cost ~6 GB at full H&M size, the training's peak
        mine = win.before.interactions.filter(pl.col("customer_id").is_in(pl.Series(sample, dtype=pl.String)))
        hybrid = HybridRecommender(gens, ItemStats().fit(win.before), PurchaseHistory(mine),
                                   candidates={k: v for k, v in candidates.items() if k in gens},
                                   new_candidates={k: v for k, v in new_candidates.items() if k in gens})
        del mine
        with timer(f"ranker candidates ({tag})"):
            frame = hybrid.candidate_frame(sample, now=hybrid.as_of)
            frame_new = hybrid.candidate_frame(sample, now=hybrid.as_of, new_only=True)
            frame_new = frame_new.filter(pl.col("ci_count") == 0)
        names = names or hybrid.features
        if win.index == 0 or "window_start" not in info:
            hits, truths = candidate_recall(frame, win.inside.purchases)
            info.update(window_start=win.start, window_end=win.end, label_customers=len(active),
                        sampled_customers=len(sample),
                        validation_candidate_recall=round(hits / max(truths, 1), 4),
                        candidates_per_customer=round(frame.height / max(1, len(sample)), 1))
        # a customer's rows in two windows are two ranking queries: keep them apart
        suffix = pl.col("customer_id") + f"#w{win.index}"
        frames.append(frame.with_columns(pl.Series("_y", label_candidates(frame, win.inside.purchases)))
                      .with_columns(suffix))
        frames_new.append(frame_new.with_columns(
            pl.Series("_y", label_candidates(frame_new, win.inside.purchases))).with_columns(suffix))
        del hybrid, gens, frame, frame_new, win  # the window's data copies must not outlive it
    info["windows"] = len(frames)
    ranker = ranker_new = None
    with timer("fit ranker"):
        try:
            if not frames:
                raise ValueError("no label window with purchases before and in it")
            stacked = pl.concat(frames, how="diagonal_relaxed")
            ranker, fitted = fit_ranker(stacked.drop("_y"), stacked["_y"].to_numpy(), names, bags=bags, **ranker_kw)
            info.update(fitted)
            stacked = pl.concat(frames_new, how="diagonal_relaxed")
            ranker_new, info["new_only"] = fit_ranker(stacked.drop("_y"), stacked["_y"].to_numpy(), names,
                                                      bags=new_bags, **ranker_kw)
        except ValueError as exc:
            log.warning("ranker not trained (%s); using the reciprocal-rank blend", exc)
            info["error"] = str(exc)
    return ranker, ranker_new, info

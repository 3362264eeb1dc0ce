"""``HybridRecommender``: candidates from every generator → features → learned ranker → business rules.

Why two stages: single generators each see one signal (the customer's own repeats, what is bought
together, what similar customers buy, what is trending); the H&M 2022 and Instacart winners union their
candidates and let a learned model weigh them per customer.  The ranker is a gradient-boosted tree model
trained on a validation window *before* the test cut-off (labels = candidates the customer then bought),
stored as plain arrays (``TreeEnsemble``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from recsys.history import PurchaseHistory
from recsys.models.base import Recommender
from recsys.ranking._candidates import collect_candidates, widen
from recsys.ranking._cascade import Cascade, cascade_scores
from recsys.ranking._features import ItemStats, build_features, feature_names, to_matrix
from recsys.ranking._single import ItemLookup, rank_one, rrf_from_ranks
from recsys.ranking._trees import TreeEnsemble

__all__ = ["HybridRecommender", "fit_ranker", "label_candidates"]

log = logging.getLogger(__name__)

OUTPUT_SCHEMA = {
    "customer_id": pl.String,
    "rank": pl.Int32,
    "item_id": pl.String,
    "score": pl.Float32,
    "reason_type": pl.String,
    "source_item_id": pl.String,
    "source_ts": pl.Datetime("us"),
}


class HybridRecommender:
    """The served recommender: all fitted generators, item statistics, the ranker and the history.

    Parameters
    ----------
    generators
        Fitted generators by name (order = explanation priority on ties).
    stats
        ``ItemStats`` fitted on the same training data.
    history
        Purchases of known customers (the training data, plus folded-in events).
    candidates
        How many candidates each generator proposes per customer.
    new_candidates
        The same for the cross-sell ranking (items the customer never bought); default ``candidates``.
    ranker
        A ``TreeEnsemble`` over ``feature_names(generators)``; ``None`` ranks by a fixed blend
        (reciprocal-rank fusion), which is what the ranker is compared against.
    cascade
        Score with the ranker's first trees, finish each customer's best (``recsys.ranking._cascade``).
    """

    def __init__(
        self,
        generators: Mapping[str, Recommender],
        stats: ItemStats,
        history: PurchaseHistory,
        *,
        candidates: Mapping[str, int],
        ranker: TreeEnsemble | None = None,
        ranker_new: TreeEnsemble | None = None,
        new_candidates: Mapping[str, int] | None = None,
        cascade: Cascade | None = None,
    ) -> None:
        self.generators = dict(generators)
        self.stats = stats
        self.history = history
        self.candidates = dict(candidates)
        #: Per generator, how many never-bought candidates the cross-sell ranking asks for.
        self.new_candidates = dict(new_candidates) if new_candidates is not None else dict(candidates)
        self.ranker = ranker
        #: The cross-sell ranker: trained only on candidates the customer never bought (labels = new
        #: purchases), used when bought items are excluded.  Repeat signals dominate the main ranker;
        #: this one learns what predicts a *first* purchase.
        self.ranker_new = ranker_new
        #: Score the first trees for every candidate, the rest for each customer's best (``_cascade``);
        #: ``None``: every tree for every candidate.
        self.cascade = cascade
        self.features = feature_names(list(self.generators))
        self.reasons = {name: g.reason for name, g in self.generators.items()}

    # --------------------------------------------------------------- stages
    def candidate_frame(self, customer_ids: Sequence[str], now: datetime, *, new_only: bool = False) -> pl.DataFrame:
        """Stage one plus features: one row per (customer, candidate item); ``new_only`` asks the
        generators for items the customer never bought."""
        counts = self.new_candidates if new_only else self.candidates
        long = collect_candidates(self.generators, customer_ids, counts, exclude_bought=new_only)
        wide = widen(long, list(self.generators), self.reasons)
        hist = self.history.of_many(customer_ids).filter(pl.col("ts") < now)
        return build_features(wide, hist, self.stats, now)

    def score(self, frame: pl.DataFrame, *, new_only: bool = False) -> np.ndarray:
        """Ranker score per row (higher = better); ``new_only`` uses the cross-sell ranker if present."""
        ranker = self.ranker_new if new_only and self.ranker_new is not None else self.ranker
        if ranker is not None:
            return cascade_scores(ranker, to_matrix(frame, self.features), frame["item_id"], frame["customer_id"],
                                  self.cascade)
        return rrf_scores(frame, list(self.generators))

    def rank(self, customer_ids: Sequence[str], now: datetime, *, new_only: bool = False) -> pl.DataFrame:
        """Scored candidates sorted per customer (before business rules); ``new_only`` drops bought items
        and scores with the cross-sell ranker."""
        frame = self.candidate_frame(customer_ids, now, new_only=new_only)
        if new_only:
            frame = frame.filter(pl.col("ci_count") == 0)
        return frame.with_columns(pl.Series("score", self.score(frame, new_only=new_only), dtype=pl.Float32)).sort(
            ["customer_id", "score", "item_id"], descending=[False, True, False]
        )

    def recommend(
        self,
        customer_ids: Sequence[str],
        n: int = 12,
        *,
        now: datetime | None = None,
        rules: Any | None = None,
        exclude_bought: bool = False,
        fallback: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """Final lists (customer_id, rank, item_id, score, reason_type, source_item_id, source_ts).

        ``rules`` is a prepared ``recsys.rules.RuleSet``; without it the top-``n`` ranked candidates
        are returned (optionally without previously bought items), padded from popularity.
        """
        now = now or self.as_of
        ranked = self.rank(customer_ids, now, new_only=exclude_bought)
        return self.finalize(ranked, customer_ids, n, now=now, rules=rules, exclude_bought=exclude_bought,
                             fallback=fallback)

    def finalize(
        self,
        ranked: pl.DataFrame,
        customer_ids: Sequence[str],
        n: int,
        *,
        now: datetime,
        rules: Any | None = None,
        exclude_bought: bool = False,
        fallback: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """Turn ranked candidates into final lists (rules, or top-``n`` with optional exclusion + padding)."""
        cols = ["customer_id", "item_id", "score", "reason_type", "source_item_id", "source_ts"]
        if rules is not None:
            hist = self.history.of_many(customer_ids).filter(pl.col("ts") < now)
            return rules.apply(ranked.select(cols), n=n, history=hist, now=now, customer_ids=list(customer_ids))
        if exclude_bought:
            bought = self.history.of_many(customer_ids).select("customer_id", "item_id").unique()
            ranked = ranked.join(bought, on=["customer_id", "item_id"], how="anti", maintain_order="left")
        out = ranked.select(cols).group_by("customer_id", maintain_order=True).head(n)
        out = _pad_with_popular(out, customer_ids, n, fallback, exclude=bought if exclude_bought else None)
        return out.with_columns(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("customer_id").alias("rank")
        ).select(list(OUTPUT_SCHEMA))

    def rank_one(self, customer_id: str, now: datetime, *, new_only: bool = False) -> pl.DataFrame:
        """``rank([customer_id], now)`` on the per-request path (dictionaries and arrays, no joins):
        the same features, scores and order, returning ``customer_id, item_id, score, reason_type,
        source_item_id, source_ts``."""
        return rank_one(self, customer_id, now, new_only=new_only)

    @property
    def item_lookup(self) -> ItemLookup:
        """Item statistics as dictionaries for ``rank_one``, built on first use (fixed per bundle)."""
        lookup = self.__dict__.get("_item_lookup")
        if lookup is None or lookup[0] is not self.stats:
            lookup = (self.stats, ItemLookup.of(self.stats))
            self.__dict__["_item_lookup"] = lookup
        return lookup[1]

    @property
    def reference_time(self) -> datetime:
        """The newest training purchase."""
        return self.stats.reference_time_

    @property
    def as_of(self) -> datetime:
        """The default "now" of a recommendation: just after the newest training purchase.

        Why not ``reference_time`` itself: histories are read strictly before "now", so a purchase
        stamped at the very end of the data (yesterday's last order, in a nightly retrain) would be
        left out of the features, the exclusions and the explanations.
        """
        return self.stats.reference_time_ + timedelta(microseconds=1)

    # ----------------------------------------------------------- typed generator access
    # Code that needs one generator by name gets it typed and checked here (``hybrid.popularity``,
    # ``hybrid.generator("als", ALS)``) instead of a ``Recommender`` and an ignore comment.  (Class-level
    # imports for the type checker only, so this block needs no import at the top of the module.)
    import typing as _typing

    if _typing.TYPE_CHECKING:
        from recsys.models.buy_again import BuyAgain
        from recsys.models.category_affinity import CategoryAffinity
        from recsys.models.category_complements import CategoryComplements
        from recsys.models.copurchase import CoPurchase
        from recsys.models.popularity import Popularity

        _G = _typing.TypeVar("_G", bound=Recommender)
    del _typing

    def generator(self, name: str, cls: type[_G]) -> _G | None:
        """The generator ``name``, checked to be a ``cls``; ``None`` when the bundle has none.

        Raises ``TypeError`` when the generator of that name is of another class.
        """
        gen = self.generators.get(name)
        if gen is None:
            return None
        if not isinstance(gen, cls):
            raise TypeError(f"generator {name!r} is a {type(gen).__name__}, not a {cls.__name__}")
        return gen

    @property
    def popularity(self) -> Popularity:
        """The popularity generator: every trained bundle has one (the fallback of every list)."""
        from recsys.exceptions import BundleError
        from recsys.models.popularity import Popularity

        gen = self.generator("popularity", Popularity)
        if gen is None:
            raise BundleError("this recommender has no 'popularity' generator (the fallback of every list)")
        return gen

    @property
    def buy_again(self) -> BuyAgain | None:
        """The ``buy_again`` generator, or ``None`` when the bundle has none."""
        from recsys.models.buy_again import BuyAgain

        return self.generator("buy_again", BuyAgain)

    @property
    def category_affinity(self) -> CategoryAffinity | None:
        """The ``category_affinity`` generator, or ``None`` when the bundle has none."""
        from recsys.models.category_affinity import CategoryAffinity

        return self.generator("category_affinity", CategoryAffinity)

    @property
    def category_complements(self) -> CategoryComplements | None:
        """The ``category_complements`` generator, or ``None`` when the bundle has none."""
        from recsys.models.category_complements import CategoryComplements

        return self.generator("category_complements", CategoryComplements)

    @property
    def copurchase(self) -> CoPurchase | None:
        """The ``copurchase`` generator, or ``None`` when the bundle has none."""
        from recsys.models.copurchase import CoPurchase

        return self.generator("copurchase", CoPurchase)


def rrf_scores(frame: pl.DataFrame, generator_names: Sequence[str], k: float = 20.0) -> np.ndarray:
    """Reciprocal-rank fusion: Σ_g 1/(k + rank_g) — the untrained blend the ranker must beat."""
    cols = [f"rank_{g}" for g in generator_names if f"rank_{g}" in frame.columns]
    if frame.height == 0 or not cols:
        return np.zeros(frame.height)
    return rrf_from_ranks(frame.select(pl.col(cols).cast(pl.Float64)).to_numpy(), k)


def _pad_with_popular(
    out: pl.DataFrame,
    customer_ids: Sequence[str],
    n: int,
    fallback: pl.DataFrame | None,
    exclude: pl.DataFrame | None = None,
) -> pl.DataFrame:
    if fallback is None or fallback.height == 0:
        return out
    counts = dict(out.group_by("customer_id").len().iter_rows())
    short = [c for c in customer_ids if counts.get(c, 0) < n]
    if not short:
        return out
    fb = fallback.select("item_id", pl.col("score").cast(pl.Float32)).head(n * 3)
    pad = (
        pl.DataFrame({"customer_id": short}, schema={"customer_id": pl.String})
        .join(fb, how="cross")
        .join(out.select("customer_id", "item_id"), on=["customer_id", "item_id"], how="anti")
    )
    if exclude is not None:
        pad = pad.join(exclude, on=["customer_id", "item_id"], how="anti")
    pad = (
        pad.with_columns(
            (pl.col("score") - 1e6).alias("score"),  # below every ranked candidate
            pl.lit("popular").alias("reason_type"),
            pl.lit(None, pl.String).alias("source_item_id"),
            pl.lit(None, pl.Datetime("us")).alias("source_ts"),
        )
    )
    both = pl.concat([out, pad.select(out.columns)], how="vertical_relaxed")
    order = pl.DataFrame({"customer_id": list(customer_ids)}, schema={"customer_id": pl.String}).with_row_index("_o")
    return (
        both.join(order, on="customer_id", how="left")
        .sort("_o", "score", "item_id", descending=[False, True, False])
        .group_by("customer_id", maintain_order=True).head(n)
        .drop("_o")
    )


def label_candidates(frame: pl.DataFrame, future: pl.DataFrame) -> np.ndarray:
    """1 where the customer bought the candidate in the label window, else 0."""
    bought = future.select("customer_id", "item_id").unique().with_columns(pl.lit(1, pl.Int8).alias("_y"))
    y = frame.select("customer_id", "item_id").join(bought, on=["customer_id", "item_id"], how="left",
                                                    maintain_order="left")["_y"]
    return y.fill_null(0).to_numpy().astype(np.int8)


# The ranker fitting moved to _fit.py; re-exported so existing imports keep working.
from recsys.ranking._fit import MONOTONIC, fit_ranker  # noqa: E402,F401

"""Ranking: the candidates of every generator → features → a learned tree ranker (``HybridRecommender``).

``_candidates`` (the union of the generators' candidates, with reasons), ``_features``, ``_fit`` (the
ranker), ``_trees`` (the ensemble as plain arrays) and ``_single`` (the per-request path) are internal.
"""

from __future__ import annotations

from recsys.ranking._trees import TreeEnsemble
from recsys.ranking.hybrid import HybridRecommender, fit_ranker, label_candidates

__all__ = ["HybridRecommender", "TreeEnsemble", "fit_ranker", "label_candidates"]

"""Candidate generators: each a small estimator honouring ``recsys.models.base.Recommender``."""

from __future__ import annotations

from recsys.models.base import Recommendations, Recommender
from recsys.models.popularity import Popularity

__all__ = ["Recommendations", "Recommender", "Popularity"]

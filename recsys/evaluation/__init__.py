"""Evaluation: exact ranking metrics on *served* lists, per variant and per customer segment.

See ``recsys.evaluation.metrics`` for the definitions (who counts, the variants, the formulas).
"""

from __future__ import annotations

from recsys.evaluation._groups import activity_tiers, cold_vs_known
from recsys.evaluation.metrics import (
    METRIC_COLUMNS,
    evaluate,
    evaluate_by_group,
    per_customer_metrics,
    precision_recall_curve,
    recommendations_frame,
)

__all__ = [
    "METRIC_COLUMNS",
    "activity_tiers",
    "cold_vs_known",
    "evaluate",
    "evaluate_by_group",
    "per_customer_metrics",
    "precision_recall_curve",
    "recommendations_frame",
]

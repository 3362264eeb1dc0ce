"""Business rules applied after ranking, in the same code path for website widgets and emails.

Why a separate layer: the ranker decides what a customer is likely to want; the shop decides what it
is willing to show (in stock, not recalled, not what they bought yesterday, not twelve shoes, the
campaign's pinned item).  Keeping those decisions in configuration (``configs/placements.yaml``) lets
merchandisers change them without retraining, and keeps every placement honest in the same way.

    >>> placements = load_placements("configs/placements.yaml")  # doctest: +SKIP
    >>> rules = RuleSet(placements["for_you"], items, fallback=popular)  # once per bundle  # doctest: +SKIP
    >>> rules.apply(ranked, n=12, history=purchases, now=now)  # per request  # doctest: +SKIP
"""

from __future__ import annotations

from recsys.rules._config import Block, Boost, Pin, PlacementRules, UpsellBand, as_naive_utc, load_placements
from recsys.rules._engine import OUTPUT_COLUMNS, RuleSet, apply_rules

__all__ = [
    "PlacementRules",
    "UpsellBand",
    "Boost",
    "Pin",
    "Block",
    "RuleSet",
    "apply_rules",
    "load_placements",
    "OUTPUT_COLUMNS",
    "as_naive_utc",
]

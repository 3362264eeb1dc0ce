"""``ShopConfig``: the knobs of the synthetic shop (sizes, dates, planted strengths, shares)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any

from recsys.data._synthetic_world import _CATEGORIES, _COMPLEMENTS

__all__ = ["ShopConfig"]


@dataclass(frozen=True)
class ShopConfig:
    """Knobs of the synthetic shop; the defaults make a ~20k-interaction shop in well under 1 s.

    Parameters
    ----------
    seed
        Seed of the single ``numpy.random.Generator``; same seed and config → identical frames.
    n_customers, n_items
        Sizes (``n_items`` ≥ number of categories, 20).
    start, days
        Every timestamp lies in ``[start, start + days)``.
    tier_shares
        Shares of customers in the tiers ``vip, regular, occasional, one_time``.
    extra_orders_per_year
        Per tier, mean number of *base* orders per active year beyond the first.
    complement_strength
        Multiplier of the planted complement probabilities (0 switches complements off).
    co_purchase_strength
        Multiplier of the same-order co-purchase probabilities.
    replenish_adoption
        Share of buyers of a replenishable category who keep replenishing it.
    replenish_same_item
        Probability that a replenishment buys the same item as the first purchase.
    style_concentration
        Dirichlet concentration of each customer's style mixture (small → one dominant style).
    consent_rate, in_stock_rate
        Shares of customers with email consent and of items in stock.
    preexisting_share
        Share of customers whose account predates ``start`` (others join during the year).
    views_per_purchase
        Mean number of ``view`` events emitted before each purchase line (0 → purchases only).
    """

    seed: int = 0
    n_customers: int = 2000
    n_items: int = 600
    start: date = date(2025, 1, 1)
    days: int = 365
    tier_shares: tuple[float, float, float, float] = (0.03, 0.17, 0.40, 0.40)
    extra_orders_per_year: tuple[float, float, float, float] = (18.0, 6.0, 1.5, 0.0)
    complement_strength: float = 1.0
    co_purchase_strength: float = 1.0
    replenish_adoption: float = 0.8
    replenish_same_item: float = 0.7
    style_concentration: float = 0.3
    consent_rate: float = 0.7
    in_stock_rate: float = 0.95
    preexisting_share: float = 0.6
    views_per_purchase: float = 0.0

    def __post_init__(self) -> None:
        if self.n_customers < 1:
            raise ValueError(f"n_customers must be ≥ 1, got {self.n_customers}")
        if self.n_items < len(_CATEGORIES):
            raise ValueError(f"n_items must be ≥ {len(_CATEGORIES)} (one per category), got {self.n_items}")
        if self.days < 1:
            raise ValueError(f"days must be ≥ 1, got {self.days}")
        if len(self.tier_shares) != 4 or min(self.tier_shares) < 0 or sum(self.tier_shares) <= 0:
            raise ValueError(f"tier_shares must be 4 non-negative numbers with a positive sum: {self.tier_shares}")
        if len(self.extra_orders_per_year) != 4 or min(self.extra_orders_per_year) < 0:
            raise ValueError(f"extra_orders_per_year must be 4 non-negative numbers: {self.extra_orders_per_year}")
        for name in ("replenish_adoption", "replenish_same_item", "consent_rate", "in_stock_rate",
                     "preexisting_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("complement_strength", "co_purchase_strength", "style_concentration", "views_per_purchase"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.style_concentration == 0:
            raise ValueError("style_concentration must be > 0")
        if max(_COMPLEMENTS[t][c] for t in _COMPLEMENTS for c in _COMPLEMENTS[t]) * self.complement_strength > 1:
            raise ValueError(f"complement_strength {self.complement_strength} makes a probability exceed 1")

    @property
    def start_datetime(self) -> datetime:
        """Start of the interaction window (midnight of ``start``)."""
        return datetime(self.start.year, self.start.month, self.start.day)

    @property
    def end_datetime(self) -> datetime:
        """Exclusive end of the interaction window."""
        return self.start_datetime + timedelta(days=self.days)

    def describe(self) -> str:
        """The ``Dataset.source`` string: the seed, sizes and every non-default knob."""
        parts = [f"seed={self.seed}", f"n_customers={self.n_customers}", f"n_items={self.n_items}"]
        default = ShopConfig()
        for f in fields(self):
            if f.name in ("seed", "n_customers", "n_items"):
                continue
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                parts.append(f"{f.name}={value}")
        return f"synthetic({','.join(parts)})"

    @classmethod
    def for_interactions(cls, n_interactions: int, **overrides: Any) -> ShopConfig:
        """A config sized to produce roughly ``n_interactions`` interactions (±~3 %).

        Parameters
        ----------
        n_interactions
            Target number of interaction rows.
        **overrides
            Any other ``ShopConfig`` field (``n_customers`` is computed and must not be given).

        Notes
        -----
        Interactions per customer depend on every knob, so this generates a small pilot shop
        (5,000 customers, same knobs) and scales ``n_customers`` linearly.
        """
        if "n_customers" in overrides:
            raise TypeError("for_interactions computes n_customers; do not pass it")
        if n_interactions < 1:
            raise ValueError(f"n_interactions must be ≥ 1, got {n_interactions}")
        from recsys.data.synthetic import generate_shop  # (the generator needs this module first)

        pilot_n = 5_000
        pilot = generate_shop(cls(n_customers=pilot_n, **overrides))
        per_customer = pilot.dataset.interactions.height / pilot_n
        return cls(n_customers=max(1, round(n_interactions / per_customer)), **overrides)

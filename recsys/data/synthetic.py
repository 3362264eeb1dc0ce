"""A seeded synthetic clothing shop with *planted*, known structure.

Why it exists:

* It is the embedded default data: the whole project (CLI, service, campaigns) runs anywhere,
  with no download and no private data.
* It is ground truth for tests: models are asserted to *recover what was planted* — directional
  category complements (trousers → belts, never belts → trousers), replenishment intervals
  (socks every ~60 days), customer value tiers and seasonality — which a real data set can never
  tell us with certainty.
* It scales (fully vectorised with numpy; no Python loop per customer or per interaction), so
  the same generator feeds million-interaction benchmarks.

How a shop is made (all draws from one ``numpy.random.Generator(seed)``):

1. A catalogue: ~20 categories with department, log-normal price level and item popularity
   (a few bestsellers per category); items fall into budget / mid / premium price tiers.
2. Customers: a value tier (vip, regular, occasional, one_time) fixing how many orders they make
   and how big, a mixture over *styles* (formal, casual, womenswear, outdoor, basics) fixing what
   they buy, a price tier, a creation date and an email-consent flag.
3. Base orders of 1–5 lines spread over the year (mild winter-sales peak); the category of each
   line is drawn from the order's style × the category's seasonality in that month.
4. Same-order co-purchase: an order with shirts often also gets a tie.
5. Directional complements: after an order containing a trigger category, with the planted
   probability the customer places a follow-up order with the complement category within the
   planted delay window.  Complement categories never trigger anything, so there is no reverse
   edge and no chain.
6. Replenishment: most buyers of a replenishable category (socks, underwear) buy it again every
   ~planted interval (gamma jitter, CV 0.2) until they stop (small hazard per cycle), usually the
   very same item.
7. Optionally a share of ``view`` events before purchases.

Layout: this module is the public face (``generate_shop``, ``ShopConfig``, ``GroundTruth``,
``SyntheticShop``); the planted numbers are in ``_synthetic_world``, the knobs in
``_synthetic_config`` and the drawing in ``_synthetic_draws``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.data._synthetic_config import ShopConfig
# (the underscored names are also imported from here by recsys.data.synthetic_stream)
from recsys.data._synthetic_draws import (
    _epoch_us,
    _frame_interactions,
    _GroupSampler,
    _item_sampler,
    _make_customers,
    _make_interactions,
    _make_items,
    _zfill_ids,
)
from recsys.data._synthetic_world import (
    _CATALOGUE,
    _CATEGORIES,
    _CO_PURCHASE,
    _COMPLEMENT_DELAY_DAYS,
    _COMPLEMENTS,
    _REPLENISHABLE,
    _STYLE_NAMES,
    STYLES,
    TIERS,
)
from recsys.data._writers import FileFormat, write_files, write_sqlite
from recsys.dataset import Dataset

__all__ = [
    "ShopConfig",
    "GroundTruth",
    "SyntheticShop",
    "generate_shop",
    "write_files",
    "write_sqlite",
    "FileFormat",
    "TIERS",
    "STYLES",
]

# --------------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class GroundTruth:
    """What was planted; tests assert that models recover it.

    Attributes
    ----------
    complements
        Directional category complements: trigger → {complement: probability of a follow-up
        order containing the complement within ``complement_delay_days`` after a trigger order}.
        There is no reverse edge (``belts`` leads to nothing).
    complement_delay_days
        (min, max) delay of a complement follow-up, drawn uniformly.
    co_purchase
        Same-order co-purchase: trigger → {added category: probability}.
    replenishable
        Category → planted mean inter-purchase interval in days (gamma jitter, CV 0.2).
    replenish_same_item
        Probability a replenishment re-buys the same item.
    categories
        All categories; ``departments`` maps each to its department.
    segments
        customer_id → planted value tier (``vip``, ``regular``, ``occasional``, ``one_time``).
    customer_styles
        customer_id → dominant planted style (``formal``, ``casual``, ``womenswear``, ``outdoor``,
        ``basics``).
    seasonality
        Seasonal category → peak month (1–12); non-seasonal categories are absent.
    seasonal_amplitude
        Seasonal category → log-amplitude (weight × e^{±amp} at peak / trough).
    category_price
        Category → planted median item price.
    """

    complements: dict[str, dict[str, float]]
    complement_delay_days: tuple[float, float]
    co_purchase: dict[str, dict[str, float]]
    replenishable: dict[str, float]
    replenish_same_item: float
    categories: list[str]
    departments: dict[str, str]
    segments: dict[str, str]
    customer_styles: dict[str, str]
    seasonality: dict[str, int]
    seasonal_amplitude: dict[str, float]
    category_price: dict[str, float]


@dataclass(frozen=True)
class SyntheticShop:
    """A generated shop: the canonical ``dataset`` plus the ``truth`` planted in it."""

    dataset: Dataset
    truth: GroundTruth
    config: ShopConfig = field(default_factory=ShopConfig)

    def write_files(self, folder: str | Path, fmt: FileFormat = "csv") -> dict[str, Path]:
        """Shortcut for :func:`write_files` on this shop's dataset."""
        return write_files(self.dataset, folder, fmt)

    def write_sqlite(self, path: str | Path) -> Path:
        """Shortcut for :func:`write_sqlite` on this shop's dataset."""
        return write_sqlite(self.dataset, path)


# ---------------------------------------------------------------------------------- generation


def generate_shop(config: ShopConfig | None = None, /, **overrides: Any) -> SyntheticShop:
    """Generate a seeded synthetic clothing shop with planted structure.

    Parameters
    ----------
    config
        A ``ShopConfig``; default ``ShopConfig()``.
    **overrides
        ``ShopConfig`` fields overriding ``config`` (e.g. ``seed=1, n_customers=50_000``).

    Returns
    -------
    SyntheticShop
        ``.dataset`` (canonical interactions, items, customers; ``source`` names the seed and
        knobs) and ``.truth`` (the planted ``GroundTruth``).

    Examples
    --------
    >>> shop = generate_shop(seed=1, n_customers=500)
    >>> shop.dataset.interactions.height > 0
    True
    >>> shop.truth.complements["trousers"]["belts"]
    0.4
    """
    cfg = ShopConfig() if config is None else config
    if overrides:
        cfg = replace(cfg, **overrides)
    rng = np.random.default_rng(cfg.seed)

    items, item_cat, item_ptier, item_pop, item_price = _make_items(cfg, rng)
    cust = _make_customers(cfg, rng)
    item_sampler = _item_sampler(item_cat, item_ptier, item_pop)
    lines = _make_interactions(cfg, rng, cust, item_cat, item_price, item_sampler)

    n_cust = cfg.n_customers
    cust_width = max(6, len(str(n_cust)))
    customer_ids = _zfill_ids("C", np.arange(1, n_cust + 1), cust_width)
    start_us = _epoch_us(cfg.start_datetime)
    customers = pl.DataFrame({
        "customer_id": customer_ids,
        "email_consent": cust["consent"],
        "created_at": pl.Series(start_us + cust["created"] * 1_000_000, dtype=pl.Int64).cast(pl.Datetime("us")),
    })

    interactions = _frame_interactions(lines, customer_ids, items["item_id"], start_us)
    dataset = Dataset(interactions=interactions, items=items, customers=customers, source=cfg.describe())

    truth = GroundTruth(
        complements={t: dict(c) for t, c in _COMPLEMENTS.items()},
        complement_delay_days=_COMPLEMENT_DELAY_DAYS,
        co_purchase={t: dict(c) for t, c in _CO_PURCHASE.items()},
        replenishable=dict(_REPLENISHABLE),
        replenish_same_item=cfg.replenish_same_item,
        categories=list(_CATEGORIES),
        departments={c: v[0] for c, v in _CATALOGUE.items()},
        segments=dict(zip(customer_ids.to_list(), np.asarray(TIERS)[cust["tier"]].tolist(), strict=True)),
        customer_styles=dict(zip(customer_ids.to_list(),
                                 np.asarray(_STYLE_NAMES)[cust["style_mix"].argmax(axis=1)].tolist(), strict=True)),
        seasonality={c: v[2] for c, v in _CATALOGUE.items() if v[3] > 0},
        seasonal_amplitude={c: v[3] for c, v in _CATALOGUE.items() if v[3] > 0},
        category_price={c: v[1] for c, v in _CATALOGUE.items()},
    )
    return SyntheticShop(dataset=dataset, truth=truth, config=cfg)

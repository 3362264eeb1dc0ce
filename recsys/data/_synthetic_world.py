"""The synthetic shop's planted world: categories, complements, co-purchase, replenishment, styles.

What the generator (``recsys.data._synthetic_draws``) draws from and ``GroundTruth`` reports: change a
number here and the default shop — whose fingerprint the tests pin — changes with it.
"""

from __future__ import annotations

from typing import Final

import numpy as np

#: Value tiers, best first.
TIERS: Final[tuple[str, ...]] = ("vip", "regular", "occasional", "one_time")

#: category → (department, median price, peak month or 0, seasonal amplitude, name adjectives)
_CATALOGUE: Final[dict[str, tuple[str, float, int, float, tuple[str, ...]]]] = {
    "trousers": ("menswear", 60.0, 0, 0.0, ("Slim-fit", "Chino", "Tailored", "Pleated", "Wool", "Linen")),
    "shirts": ("menswear", 45.0, 0, 0.0, ("Oxford", "Poplin", "Slim-fit", "Linen", "Flannel", "Twill")),
    "jackets": ("outerwear", 120.0, 10, 0.5, ("Bomber", "Denim", "Quilted", "Blazer", "Field", "Rain")),
    "coats": ("outerwear", 180.0, 12, 1.0, ("Wool", "Trench", "Parka", "Duffle", "Pea", "Down")),
    "dresses": ("womenswear", 80.0, 6, 0.4, ("Wrap", "Midi", "Maxi", "Shirt", "Slip", "Knit")),
    "skirts": ("womenswear", 50.0, 6, 0.3, ("Pleated", "Pencil", "A-line", "Denim", "Midi", "Wrap")),
    "sweaters": ("knitwear", 60.0, 11, 0.7, ("Merino", "Cashmere", "Cable-knit", "Crew-neck", "V-neck", "Cotton")),
    "t-shirts": ("casualwear", 20.0, 7, 0.4, ("Crew-neck", "V-neck", "Organic", "Graphic", "Striped", "Pocket")),
    "jeans": ("casualwear", 70.0, 0, 0.0, ("Straight", "Slim", "Relaxed", "Tapered", "Bootcut", "Raw")),
    "shorts": ("casualwear", 35.0, 7, 1.0, ("Chino", "Denim", "Cargo", "Linen", "Running", "Drawstring")),
    "swimwear": ("beachwear", 35.0, 7, 1.5, ("Classic", "Printed", "Sport", "Retro", "Quick-dry", "Solid")),
    "shoes": ("footwear", 90.0, 0, 0.0, ("Leather", "Suede", "Derby", "Loafer", "Canvas", "Running")),
    "belts": ("accessories", 30.0, 0, 0.0, ("Leather", "Braided", "Reversible", "Canvas", "Suede", "Classic")),
    "ties": ("accessories", 25.0, 0, 0.0, ("Silk", "Knit", "Striped", "Paisley", "Skinny", "Wool")),
    "bags": ("accessories", 70.0, 0, 0.0, ("Tote", "Crossbody", "Leather", "Clutch", "Shoulder", "Canvas")),
    "scarves": ("accessories", 30.0, 12, 1.0, ("Wool", "Cashmere", "Silk", "Checked", "Knit", "Fringed")),
    "hats": ("accessories", 25.0, 1, 0.4, ("Beanie", "Wool", "Bucket", "Flat", "Fedora", "Knit")),
    "gloves": ("accessories", 25.0, 1, 1.3, ("Leather", "Wool", "Touch", "Knit", "Lined", "Suede")),
    "socks": ("basics", 8.0, 0, 0.0, ("Cotton", "Wool", "Ankle", "Sport", "Bamboo", "Striped")),
    "underwear": ("basics", 15.0, 0, 0.0, ("Cotton", "Stretch", "Classic", "Modal", "Boxer", "Brief")),
}
_CATEGORIES: Final[tuple[str, ...]] = tuple(_CATALOGUE)
_CAT_INDEX: Final[dict[str, int]] = {c: i for i, c in enumerate(_CATEGORIES)}

#: Directional complements: trigger → {complement: P(follow-up order with it | trigger order)}.
#: No complement is itself a trigger, so no reverse edge (belts → trousers) can arise.
_COMPLEMENTS: Final[dict[str, dict[str, float]]] = {
    "trousers": {"belts": 0.40, "shoes": 0.25},
    "shirts": {"ties": 0.35},
    "dresses": {"bags": 0.40, "shoes": 0.25},
    "jackets": {"scarves": 0.35},
    "coats": {"gloves": 0.40, "hats": 0.20},
    "jeans": {"belts": 0.20},
}
_COMPLEMENT_DELAY_DAYS: Final[tuple[float, float]] = (3.0, 30.0)

#: Same-order co-purchase: trigger → {added: P(added to the same order)}.
_CO_PURCHASE: Final[dict[str, dict[str, float]]] = {
    "shirts": {"ties": 0.30},
    "jeans": {"t-shirts": 0.25},
}

#: Replenishable category → planted mean inter-purchase interval (days).
_REPLENISHABLE: Final[dict[str, float]] = {"socks": 60.0, "underwear": 90.0}
_REPLENISH_CV: Final[float] = 0.2  # gamma shape 1/CV² = 25
_REPLENISH_STOP: Final[float] = 0.1  # hazard of stopping after each cycle

#: Style → category weights (a small baseline is added for every category).
STYLES: Final[dict[str, dict[str, float]]] = {
    "formal": {"trousers": 4, "shirts": 5, "shoes": 1.5, "jackets": 1.5, "sweaters": 1, "coats": 0.8,
               "socks": 1, "underwear": 0.5, "ties": 0.3, "belts": 0.2},
    "casual": {"t-shirts": 5, "jeans": 4, "shorts": 2, "sweaters": 2, "shoes": 1.5, "jackets": 1,
               "swimwear": 1, "hats": 0.4, "socks": 1, "underwear": 1},
    "womenswear": {"dresses": 5, "skirts": 4, "t-shirts": 1.5, "sweaters": 1.5, "shoes": 1.5, "swimwear": 1,
                   "coats": 0.8, "bags": 0.4, "scarves": 0.4},
    "outdoor": {"jackets": 4, "coats": 3, "sweaters": 2, "trousers": 1, "shoes": 1, "gloves": 0.6,
                "scarves": 0.6, "hats": 0.6},
    "basics": {"socks": 5, "underwear": 5, "t-shirts": 2, "shorts": 0.5},
}
_STYLE_NAMES: Final[tuple[str, ...]] = tuple(STYLES)
_STYLE_BASELINE: Final[float] = 0.05

#: Price tiers (budget, mid, premium): customer tier × item tier affinity.
_PRICE_AFFINITY: Final[np.ndarray] = np.array([[3.0, 1.0, 0.3], [1.0, 2.0, 1.0], [0.3, 1.0, 3.0]])

_BRANDS: Final[tuple[tuple[str, ...], ...]] = (
    ("Basix", "Everyday Co", "Urban Thread", "Valuewear", "Kettle & Pine", "Mono"),
    ("Northwind", "Harbour Lane", "Fieldstone", "Linden", "Marlow", "Oak & Ivy", "Tidewater"),
    ("Atelier Nord", "Maison Verre", "Sartoria Blu", "Hollis & Crane", "Aurum", "Vellum"),
)

#: Per tier: share of customers is in ``ShopConfig``; here the lines-per-order distribution.
_LINES_P: Final[dict[str, tuple[float, ...]]] = {
    "vip": (0.25, 0.30, 0.20, 0.15, 0.10),
    "other": (0.50, 0.27, 0.13, 0.07, 0.03),
}
#: Hour-of-day weights of purchases (evening peak).
_HOUR_W: Final[np.ndarray] = np.array(
    [0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 1.0, 1.1, 1.2, 1.3,
     1.4, 1.3, 1.2, 1.2, 1.3, 1.5, 1.8, 2.0, 2.1, 1.8, 1.2, 0.6]
)  # fmt: skip

_DAY = 86_400

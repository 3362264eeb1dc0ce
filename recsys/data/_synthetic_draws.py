"""How the synthetic shop is drawn: catalogue, customers, orders, follow-ups and views.

Every function takes the one ``numpy.random.Generator`` of a shop and draws in a fixed order, so a
seed gives the same shop byte for byte (``generate_shop`` calls them; ``recsys.data.synthetic_stream``
calls them per block).  Fully vectorised: no Python loop per customer or per interaction.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from recsys.data._synthetic_config import ShopConfig
from recsys.data._synthetic_world import (
    _BRANDS,
    _CAT_INDEX,
    _CATALOGUE,
    _CATEGORIES,
    _CO_PURCHASE,
    _COMPLEMENT_DELAY_DAYS,
    _COMPLEMENTS,
    _DAY,
    _HOUR_W,
    _LINES_P,
    _PRICE_AFFINITY,
    _REPLENISH_CV,
    _REPLENISH_STOP,
    _REPLENISHABLE,
    _STYLE_BASELINE,
    _STYLE_NAMES,
    STYLES,
)

__all__ = [
    "_GroupSampler",
    "_draw_rows",
    "_zfill_ids",
    "_epoch_us",
    "_make_items",
    "_make_customers",
    "_item_sampler",
    "_category_sampler",
    "_make_interactions",
    "_add_views",
    "_frame_interactions",
]


class _GroupSampler:
    """Draw from many categorical distributions at once: one searchsorted for N draws.

    Group ``g``'s normalised cumulative weights are stored shifted into ``(g, g + 1]``, so a
    draw for group ``g`` is ``searchsorted(cum, g + u)``.  Zero-weight outcomes are never drawn.
    """

    def __init__(self, weights: np.ndarray, outcomes: np.ndarray | None = None,
                 group_of: np.ndarray | None = None) -> None:
        # Either a dense (n_groups, n_outcomes) weight matrix, or flat weights with outcome ids
        # and group ids (sorted by group).
        if group_of is None:
            n_groups, n_out = weights.shape
            group_of = np.repeat(np.arange(n_groups), n_out)
            outcomes = np.tile(np.arange(n_out), n_groups)
            weights = weights.ravel()
        assert outcomes is not None
        n_groups = int(group_of.max()) + 1
        totals = np.bincount(group_of, weights=weights, minlength=n_groups)
        if np.any(totals <= 0):
            raise ValueError("every group needs a positive total weight")
        cum = np.cumsum(weights / totals[group_of])
        starts = np.searchsorted(group_of, np.arange(n_groups))
        # Cumulative sums restart per group: subtract the sum of preceding groups.
        offsets = np.concatenate([[0.0], cum[np.r_[starts[1:] - 1]]]) if n_groups > 1 else np.zeros(1)
        cum = cum - offsets[group_of] + group_of
        ends = np.r_[starts[1:], len(cum)] - 1
        cum[ends] = np.arange(n_groups) + 1.0  # exact upper edges
        self._cum = cum
        self._outcomes = outcomes

    def draw(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(len(groups)) * (1.0 - 1e-9)
        idx = np.searchsorted(self._cum, groups + u, side="right")
        return self._outcomes[idx]


def _draw_rows(cum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of a row-wise cumulative probability matrix."""
    u = rng.random(cum.shape[0]) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), cum.shape[1] - 1)


def _zfill_ids(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    return pl.select(
        pl.format(prefix + "{}", pl.Series(numbers).cast(pl.String).str.zfill(width))
    ).to_series()


def _epoch_us(ts: datetime) -> int:
    return int((ts - datetime(1970, 1, 1)) / timedelta(microseconds=1))


def _make_items(
    cfg: ShopConfig, rng: np.random.Generator
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Catalogue; returns the frame (sorted by item_id) and per-item arrays indexed by item row."""
    n_cat = len(_CATEGORIES)
    # Category sizes ∝ overall demand weight, at least one item each (largest remainder).
    demand = np.array([sum(s.get(c, 0.0) for s in STYLES.values()) + 1.0 for c in _CATEGORIES])
    rest = cfg.n_items - n_cat
    share = demand / demand.sum() * rest
    sizes = np.floor(share).astype(np.int64)
    sizes[np.argsort(-(share - sizes), kind="stable")[: rest - sizes.sum()]] += 1
    sizes += 1
    cat = np.repeat(np.arange(n_cat), sizes)
    n = cfg.n_items

    median = np.array([_CATALOGUE[c][1] for c in _CATEGORIES])
    raw_price = median[cat] * np.exp(rng.normal(0.0, 0.35, n))
    price = np.maximum(np.round(raw_price) - 0.01, 0.99)
    # Price tier = tercile of price within the category.
    order = np.lexsort((raw_price, cat))
    rank_in_cat = np.empty(n, np.int64)
    rank_in_cat[order] = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    ptier = np.minimum(rank_in_cat * 3 // sizes[cat], 2)
    popularity = rng.lognormal(0.0, 1.0, n)  # a few bestsellers per category

    brand_idx = np.empty(n, np.int64)
    brand_names: list[str] = []
    for t, tier_brands in enumerate(_BRANDS):
        mask = ptier == t
        brand_idx[mask] = len(brand_names) + rng.integers(0, len(tier_brands), int(mask.sum()))
        brand_names.extend(tier_brands)
    adjective = rng.integers(0, 6, n)
    in_stock = rng.random(n) < cfg.in_stock_rate

    # Ids are assigned in a random order so an id reveals nothing about the category.
    width = max(5, len(str(n)))
    number = rng.permutation(n) + 1
    names = [
        f"{_CATALOGUE[_CATEGORIES[c]][4][a]} {_CATEGORIES[c]} {k}"
        for c, a, k in zip(cat.tolist(), adjective.tolist(), number.tolist(), strict=True)
    ]  # one string per item (catalogue-sized, not interaction-sized)
    frame = pl.DataFrame({
        "item_id": _zfill_ids("I", number, width),
        "category": np.asarray(_CATEGORIES)[cat],
        "department": np.asarray([_CATALOGUE[c][0] for c in _CATEGORIES])[cat],
        "brand": np.asarray(brand_names)[brand_idx],
        "name": names,
        "price": price,
        "in_stock": in_stock,
        "replenishable": pl.Series([None] * n, dtype=pl.Boolean),
    })
    # Reorder everything by item number so row i of the arrays is row i of the frame.
    by_id = np.argsort(number)
    return frame[by_id], cat[by_id], ptier[by_id], popularity[by_id], price[by_id]


def _make_customers(cfg: ShopConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = cfg.n_customers
    shares = np.asarray(cfg.tier_shares, float)
    tier = rng.choice(4, size=n, p=shares / shares.sum())
    style_mix = rng.dirichlet(np.full(len(STYLES), cfg.style_concentration), size=n)
    # Price level: vip lean premium, occasional/one-time lean budget.
    level = rng.normal(np.array([0.8, 0.1, -0.1, -0.2])[tier], 1.0)
    ptier = np.digitize(level, [-0.6, 0.6])
    consent = rng.random(n) < cfg.consent_rate
    horizon = cfg.days * _DAY
    pre = rng.random(n) < np.clip(cfg.preexisting_share + np.array([0.25, 0.1, 0.0, -0.1])[tier], 0, 1)
    created = np.where(
        pre,
        -rng.integers(_DAY, 3 * 365 * _DAY, n),  # up to three years before start
        rng.integers(0, max(1, int(horizon * 0.9)), n),
    ).astype(np.int64)
    return {"tier": tier, "style_mix": style_mix, "ptier": ptier, "consent": consent, "created": created}


def _item_sampler(item_cat: np.ndarray, item_ptier: np.ndarray, item_pop: np.ndarray) -> _GroupSampler:
    """Sampler for group ``category * 3 + customer_price_tier`` → item row."""
    n_cat = len(_CATEGORIES)
    by_cat = np.argsort(item_cat, kind="stable")
    groups, outcomes, weights = [], [], []
    cat_sorted = item_cat[by_cat]
    for t in range(3):  # groups g = c*3 + t; build flat arrays then sort by group
        groups.append(cat_sorted * 3 + t)
        outcomes.append(by_cat)
        weights.append(item_pop[by_cat] * _PRICE_AFFINITY[t, item_ptier[by_cat]])
    g = np.concatenate(groups)
    order = np.argsort(g, kind="stable")
    assert int(g.max()) + 1 == n_cat * 3
    return _GroupSampler(np.concatenate(weights)[order], np.concatenate(outcomes)[order], g[order])


def _category_sampler(cfg: ShopConfig) -> tuple[_GroupSampler, np.ndarray]:
    """Sampler for group ``style * 12 + (month - 1)`` → category, and month of each day."""
    base = np.array([[STYLES[s].get(c, 0.0) + _STYLE_BASELINE for c in _CATEGORIES] for s in _STYLE_NAMES])
    peak = np.array([_CATALOGUE[c][2] for c in _CATEGORIES])
    amp = np.array([_CATALOGUE[c][3] for c in _CATEGORIES])
    months = np.arange(1, 13)
    season = np.exp(amp[None, :] * np.cos(2 * np.pi * (months[:, None] - peak[None, :]) / 12))  # (12, cat)
    w = base[:, None, :] * season[None, :, :]  # (style, month, cat)
    day_month = (np.datetime64(cfg.start, "D") + np.arange(cfg.days)).astype("datetime64[M]").astype(np.int64) % 12
    return _GroupSampler(w.reshape(-1, len(_CATEGORIES))), day_month


def _make_interactions(
    cfg: ShopConfig,
    rng: np.random.Generator,
    cust: dict[str, np.ndarray],
    item_cat: np.ndarray,
    item_price: np.ndarray,
    item_sampler: _GroupSampler,
) -> dict[str, np.ndarray]:
    """All interaction lines as arrays (seconds since start, customer row, item row, order key…)."""
    horizon = cfg.days * _DAY
    tier, created, ptier = cust["tier"], cust["created"], cust["ptier"]
    active_from = np.maximum(created, 0)
    active_frac = (horizon - active_from) / horizon

    # ---- base orders: first order + Poisson(rate × active share of the year) more.
    rate = np.asarray(cfg.extra_orders_per_year, float)[tier] * active_frac * cfg.days / 365.0
    n_orders = 1 + rng.poisson(rate)
    o_cust = np.repeat(np.arange(cfg.n_customers), n_orders)
    first = np.r_[0, np.cumsum(n_orders)[:-1]]
    is_first = np.zeros(len(o_cust), bool)
    is_first[first] = True

    # Day drawn from a seasonal daily intensity (winter sales / holiday peak), restricted to the
    # customer's active window; hour from an evening-peaked profile.
    doy = (np.datetime64(cfg.start, "D") + np.arange(cfg.days) - np.datetime64(cfg.start, "Y")).astype(np.int64)
    intensity = 1.0 + 0.25 * np.cos(2 * np.pi * (doy - 340) / 365.25)
    cdf = np.r_[0.0, np.cumsum(intensity)]
    lo_day = active_from[o_cust] // _DAY
    target = cdf[lo_day] + rng.random(len(o_cust)) * (cdf[-1] - cdf[lo_day])
    day = np.clip(np.searchsorted(cdf, target, side="right") - 1, lo_day, cfg.days - 1)
    hour_cdf = np.cumsum(_HOUR_W) / _HOUR_W.sum()
    hour = np.minimum(np.searchsorted(hour_cdf, rng.random(len(o_cust)), side="right"), 23)
    ts = day * _DAY + hour * 3600 + rng.integers(0, 3600, len(o_cust))
    # A customer who joins during the year places the first order right after signing up.
    joined = created[o_cust] >= 0
    new_first = is_first & joined
    ts[new_first] = created[o_cust[new_first]] + rng.integers(60, 2 * 3600, int(new_first.sum()))
    ts = np.clip(np.maximum(ts, active_from[o_cust] + 60), 0, horizon - 1)

    # ---- lines of base orders: size by tier, category by (order style, month).
    vip = tier[o_cust] == 0
    size = np.where(
        vip,
        rng.choice(5, len(o_cust), p=_LINES_P["vip"]),
        rng.choice(5, len(o_cust), p=_LINES_P["other"]),
    ) + 1
    style = _draw_rows(np.cumsum(cust["style_mix"], axis=1)[o_cust], rng)
    cat_sampler, day_month = _category_sampler(cfg)
    l_order = np.repeat(np.arange(len(o_cust)), size)
    month0 = day_month[ts // _DAY]
    l_cat = cat_sampler.draw((style * 12 + month0)[l_order], rng)

    # ---- same-order co-purchase (only while the order has fewer than 5 lines).
    n_lines = size.copy()
    extra_orders, extra_cats = [], []
    for trigger, adds in _CO_PURCHASE.items():
        has = np.zeros(len(o_cust), bool)
        has[l_order[l_cat == _CAT_INDEX[trigger]]] = True
        for added, p in adds.items():
            hit = has & (n_lines < 5) & (rng.random(len(o_cust)) < p * cfg.co_purchase_strength)
            extra_orders.append(np.flatnonzero(hit))
            extra_cats.append(np.full(int(hit.sum()), _CAT_INDEX[added]))
            n_lines += hit
    l_order = np.concatenate([l_order, *extra_orders])
    l_cat = np.concatenate([l_cat, *extra_cats])
    l_cust = o_cust[l_order]
    l_ts = ts[l_order]
    l_item = item_sampler.draw(l_cat * 3 + ptier[l_cust], rng)
    n_base_orders = len(o_cust)

    # ---- directional complements: follow-up single-line orders.
    f_cust, f_ts, f_cat = [], [], []
    lo, hi = _COMPLEMENT_DELAY_DAYS
    for trigger, comps in _COMPLEMENTS.items():
        trig_orders = np.unique(l_order[l_cat == _CAT_INDEX[trigger]])
        for comp, p in comps.items():
            hit = trig_orders[rng.random(len(trig_orders)) < p * cfg.complement_strength]
            when = ts[hit] + np.round(rng.uniform(lo, hi, len(hit)) * _DAY).astype(np.int64)
            keep = when < horizon
            f_cust.append(o_cust[hit][keep])
            f_ts.append(when[keep])
            f_cat.append(np.full(int(keep.sum()), _CAT_INDEX[comp]))
    fc_cust = np.concatenate(f_cust)
    fc_ts = np.concatenate(f_ts)
    fc_cat = np.concatenate(f_cat)
    fc_item = item_sampler.draw(fc_cat * 3 + ptier[fc_cust], rng)

    # ---- replenishment chains from each customer's first purchase of a replenishable category.
    # An adopter's later purchases of the category come from the chain only (base-order lines of
    # it after the chain start are dropped), so the planted interval is not blurred by chance buys.
    r_cust, r_ts, r_item = [], [], []
    keep_line = np.ones(len(l_cat), bool)
    shape = 1.0 / _REPLENISH_CV**2
    for category, mean_days in _REPLENISHABLE.items():
        sel = np.flatnonzero(l_cat == _CAT_INDEX[category])
        if len(sel) == 0:
            continue
        order = sel[np.lexsort((l_ts[sel], l_cust[sel]))]
        _, first_idx = np.unique(l_cust[order], return_index=True)
        starters = order[first_idx]
        starters = starters[rng.random(len(starters)) < cfg.replenish_adoption]
        if len(starters) == 0:
            continue
        chain_start = np.full(cfg.n_customers, np.iinfo(np.int64).max)
        chain_start[l_cust[starters]] = l_ts[starters]
        keep_line &= ~((l_cat == _CAT_INDEX[category]) & (l_ts > chain_start[l_cust]))
        max_cycles = int(math.ceil(cfg.days / (mean_days * 0.4))) + 1
        gaps = rng.gamma(shape, mean_days / shape, (len(starters), max_cycles)) * _DAY
        when = l_ts[starters][:, None] + np.round(np.cumsum(gaps, axis=1)).astype(np.int64)
        alive = np.cumprod(rng.random((len(starters), max_cycles)) >= _REPLENISH_STOP, axis=1).astype(bool)
        same = rng.random((len(starters), max_cycles)) < cfg.replenish_same_item
        fresh = item_sampler.draw(
            np.repeat(_CAT_INDEX[category] * 3 + ptier[l_cust[starters]], max_cycles), rng
        ).reshape(len(starters), max_cycles)
        item = np.where(same, l_item[starters][:, None], fresh)
        ok = alive & (when < horizon)
        rows = np.broadcast_to(l_cust[starters][:, None], ok.shape)
        r_cust.append(rows[ok])
        r_ts.append(when[ok])
        r_item.append(item[ok])
    rp_cust = np.concatenate(r_cust) if r_cust else np.zeros(0, np.int64)
    rp_ts = np.concatenate(r_ts) if r_ts else np.zeros(0, np.int64)
    rp_item = np.concatenate(r_item) if r_item else np.zeros(0, np.int64)

    # ---- assemble purchases; follow-up and replenishment lines are single-line orders.
    n_follow = len(fc_cust) + len(rp_cust)
    p_order = np.concatenate([l_order[keep_line], n_base_orders + np.arange(n_follow)])
    p_cust = np.concatenate([l_cust[keep_line], fc_cust, rp_cust]).astype(np.int64)
    p_ts = np.concatenate([l_ts[keep_line], fc_ts, rp_ts]).astype(np.int64)
    p_item = np.concatenate([l_item[keep_line], fc_item, rp_item]).astype(np.int64)
    n = len(p_item)
    basic = np.isin(item_cat[p_item], [_CAT_INDEX[c] for c in _REPLENISHABLE])
    qty = (1 + (rng.random(n) < np.where(basic, 0.3, 0.08))).astype(np.float32)
    discount = np.where(rng.random(n) < 0.15, rng.choice([0.7, 0.8, 0.9], n), 1.0)
    price = np.round(item_price[p_item] * discount, 2)
    out = {
        "cust": p_cust, "item": p_item, "ts": p_ts, "order": p_order, "qty": qty, "price": price,
        "view": np.zeros(n, bool),
    }
    if cfg.views_per_purchase > 0:
        out = _add_views(cfg, rng, out, item_cat, ptier, active_from, item_sampler)
    return out


def _add_views(
    cfg: ShopConfig,
    rng: np.random.Generator,
    p: dict[str, np.ndarray],
    item_cat: np.ndarray,
    ptier: np.ndarray,
    active_from: np.ndarray,
    item_sampler: _GroupSampler,
) -> dict[str, np.ndarray]:
    """Browsing before buying: views of same-category items in the 3 days before a purchase."""
    k = rng.poisson(cfg.views_per_purchase, len(p["item"]))
    src = np.repeat(np.arange(len(k)), k)
    cust = p["cust"][src]
    item = item_sampler.draw(item_cat[p["item"][src]] * 3 + ptier[cust], rng)
    ts = p["ts"][src] - rng.integers(60, 3 * _DAY, len(src))
    ts = np.maximum(ts, active_from[cust])
    m = len(src)
    return {
        "cust": np.r_[p["cust"], cust], "item": np.r_[p["item"], item], "ts": np.r_[p["ts"], ts],
        "order": np.r_[p["order"], np.full(m, -1)], "qty": np.r_[p["qty"], np.ones(m, np.float32)],
        "price": np.r_[p["price"], np.full(m, np.nan)], "view": np.r_[p["view"], np.ones(m, bool)],
    }


def _frame_interactions(
    lines: dict[str, np.ndarray], customer_ids: pl.Series, item_ids: pl.Series, start_us: int
) -> pl.DataFrame:
    """Arrays → canonical interactions: ids as strings, order ids increasing with time."""
    view = lines["view"]
    order = lines["order"]
    # Number orders by the time of their (first) line, then by internal key.
    keys = order[~view]
    n_orders = int(keys.max()) + 1 if len(keys) else 0
    order_ts = np.full(n_orders, np.iinfo(np.int64).max)
    np.minimum.at(order_ts, keys, lines["ts"][~view])
    present = order_ts < np.iinfo(np.int64).max
    rank = np.full(n_orders, -1)
    ordered = np.lexsort((np.arange(n_orders), order_ts))
    ordered = ordered[present[ordered]]
    rank[ordered] = np.arange(1, len(ordered) + 1)
    width = max(7, len(str(len(ordered))))

    frame = pl.DataFrame({
        "c": lines["cust"],
        "i": lines["item"],
        "t": lines["ts"],
        "o": np.where(view, -1, rank[np.maximum(order, 0)]),
        "quantity": lines["qty"],
        "price": lines["price"],
        "view": view,
    })
    # The same item twice in one order is one line (keep the first draw); views have no order.
    frame = pl.concat([
        frame.filter(~pl.col("view")).unique(subset=["o", "i"], keep="first", maintain_order=True),
        frame.filter(pl.col("view")),
    ]).sort(["t", "o", "i", "c", "view"])
    return pl.DataFrame({
        "customer_id": customer_ids.gather(frame["c"]),
        "item_id": item_ids.gather(frame["i"]),
        "ts": (frame["t"] * 1_000_000 + start_us).cast(pl.Datetime("us")),
        "quantity": frame["quantity"],
        "price": frame["price"].fill_nan(None),
        "order_id": frame.select(
            pl.when(pl.col("view")).then(None).otherwise(pl.format("O{}", pl.col("o").cast(pl.String).str.zfill(width)))
        ).to_series(),
        "event": frame.select(
            pl.when(pl.col("view")).then(pl.lit("view")).otherwise(pl.lit("purchase"))
        ).to_series(),
    })

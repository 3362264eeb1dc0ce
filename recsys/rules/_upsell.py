"""The upsell band: candidates priced within ``[min_ratio, max_ratio]`` × a reference price.

The reference is the context item's price (product page, cart; the dearest per category), else the
price the customer last paid in the candidate's category.  A customer with no reference at all is
not restricted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recsys.rules._catalogue import CatalogueIndex
from recsys.rules._config import UpsellBand

__all__ = ["upsell_band"]


def upsell_band(cat: CatalogueIndex, band: UpsellBand, r_cust: np.ndarray, it: np.ndarray,
                ctx_items: np.ndarray, h_cust: np.ndarray, h_item: np.ndarray, h_ts: np.ndarray,
                h_price: np.ndarray, C: int) -> tuple[np.ndarray, Callable[[int], dict[int, float] | None]]:
    """Rows inside the upsell band (or whose customer has no reference) and a
    ``customer → {category: reference price}`` accessor."""
    K = len(cat.categories)
    ref = np.full(len(it), np.nan)
    ctx_known = ctx_items[cat.category[ctx_items] >= 0] if len(ctx_items) else ctx_items
    if len(ctx_known):
        # Reference = the context item's price; with several in one category, the dearest.
        ref_by_cat = np.full(K, np.nan)
        np.fmax.at(ref_by_cat, cat.category[ctx_known], cat.price[ctx_known])
        refs_ctx = {int(k): float(v) for k, v in enumerate(ref_by_cat) if v == v}
        codes = cat.category[it]
        ref = np.where(codes >= 0, ref_by_cat[np.maximum(codes, 0)], np.nan)
        has_ref = np.full(C, bool(refs_ctx))

        def refs_of(c: int) -> dict[int, float] | None:
            return refs_ctx if refs_ctx else None
    else:
        # Reference = the price the customer last paid in each category (latest purchase wins).
        hk = h_item >= 0
        codes = cat.category[np.where(hk, h_item, 0)]
        m = hk & (codes >= 0)
        paid = np.where(np.isnan(h_price), cat.price[np.where(hk, h_item, 0)], h_price)
        keys, ts, paid = h_cust[m] * K + codes[m], h_ts[m], paid[m]
        o = np.lexsort((paid, ts, keys))
        keys, paid = keys[o], paid[o]
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = keys[1:] != keys[:-1]
        ref_keys, ref_vals = keys[last], paid[last]
        ok_ref = ~np.isnan(ref_vals)
        ref_keys, ref_vals = ref_keys[ok_ref], ref_vals[ok_ref]
        row_codes = cat.category[it]
        row_keys = r_cust * K + row_codes
        pos = np.searchsorted(ref_keys, row_keys)
        pos_c = np.minimum(pos, max(len(ref_keys) - 1, 0))
        hit = (len(ref_keys) > 0) & (row_codes >= 0)
        if len(ref_keys):
            hit &= ref_keys[pos_c] == row_keys
            ref = np.where(hit, ref_vals[pos_c], np.nan)
        has_ref = np.zeros(C, dtype=bool)
        has_ref[ref_keys // K if K else np.zeros(0, np.int64)] = True
        bounds = np.searchsorted(ref_keys, np.arange(C + 1) * K).tolist()
        ref_cats, ref_list = (ref_keys % K if K else ref_keys).tolist(), ref_vals.tolist()

        def refs_of(c: int) -> dict[int, float] | None:
            lo, hi = bounds[c], bounds[c + 1]
            return dict(zip(ref_cats[lo:hi], ref_list[lo:hi])) if hi > lo else None
    price = cat.price[it]
    with np.errstate(invalid="ignore"):
        in_band = (price >= band.min_ratio * ref) & (price <= band.max_ratio * ref)
    return in_band | ~has_ref[r_cust], refs_of

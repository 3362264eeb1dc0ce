"""``RuleSet``: the business rules of one placement, prepared once and applied after ranking.

Why one code path for widgets and emails: a rule that is right on the website (never show what was
bought last week, cap three shoes per list, honour a recall block) must be right in the campaign
email too; both call ``RuleSet.apply`` on the ranker's output.

How ``apply`` works, for every customer:

1. **Hard rules** (never relaxed) drop candidates: unknown to the catalogue, out of stock
   (``in_stock_only``), blocked (active ``block`` entries), in ``exclude_categories``, a context item,
   or bought within ``exclude_bought_days`` — unless the item is replenishable and due
   (``replenish_due``).  Duplicates keep their best row.
2. **Boosts** active at ``now`` rescale scores; candidates are ordered by score, ties by item id.
3. **Pins** active at ``now`` take their positions (reason ``"pinned"``).
4. **Soft rules** (``include_categories``, ``upsell`` band, ``max_per_category``) and **diversity**
   (round-robin or MMR over categories) pick the remaining slots from the candidates.
5. **Fallback chain** fills what is left, in the configured order: ``category_trending`` (global
   popularity restricted to the categories of the customer's candidates, reason
   ``"trending_in_category"``) and ``popular`` (reason ``"popular"``), still under the soft rules.
6. **Relaxation**: if still short, the soft rules are dropped one at a time (never the hard ones):
   first the upsell band, then ``max_per_category``, then ``include_categories`` (the placement's
   identity goes last); after each, remaining candidates by score, then the fallback steps again.

The result has exactly ``n`` rows per customer whenever the catalogue has ``n`` items passing the hard
rules for that customer and ``popular`` is in the chain (it covers the whole catalogue: items the
popularity ranking does not know come last, by id).  It never raises for empty or odd data.

Speed: the vectorised stage is numpy over the request's rows (item and customer ids are mapped with a
dict for small requests and a polars join for batches); the final walk per customer is plain Python
(see ``_select``), which keeps one customer × 200 candidates well under a millisecond and makes the
batch path and the one-customer path the same code.

Layout: ``RuleSet`` here; frames in and out (ids ↔ codes) in ``_frames``, the upsell band in
``_upsell``, the walk per customer in ``_select``, catalogue look-ups and dated entries in
``_catalogue``, the configuration in ``_config``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final

import numpy as np
import polars as pl

from recsys._arrays import in_sorted, unique_sorted
from recsys.exceptions import ConfigError, SchemaError
from recsys.rules._catalogue import CatalogueIndex, DatedState, dated_state, unknown_names
from recsys.rules._config import PlacementRules, as_naive_utc
from recsys.rules._frames import (
    best_first,
    build_output,
    check_n,
    codes,
    customer_order,
    due_item_keys,
    empty_output,
    encode_history,
    history_arrays,
    require,
)
from recsys.rules._select import BATCH_FIRST_TIER, KIND_CANDIDATE, Selector, first_tier
from recsys.rules._upsell import upsell_band

__all__ = ["RuleSet", "apply_rules", "OUTPUT_COLUMNS"]

log = logging.getLogger(__name__)
_WARNED: set[str] = set()

OUTPUT_COLUMNS: Final[tuple[str, ...]] = (
    "customer_id", "rank", "item_id", "score", "reason_type", "source_item_id", "source_ts",
)
_US_PER_DAY: Final = 86_400_000_000
_EPOCH: Final = datetime(1970, 1, 1)


class RuleSet:
    """One placement's rules bound to a catalogue and a popularity ranking, ready to apply per request.

    Build it once per model bundle (the catalogue lookups, category codes and popularity order are
    precomputed) and hold it in the service; ``apply`` is then cheap enough per request.

    Parameters
    ----------
    rules
        The placement's ``PlacementRules`` (e.g. from ``load_placements``).
    catalogue
        Items in the canonical schema; ``item_id`` is required, ``category``, ``price``, ``in_stock`` and
        ``replenishable`` are used when present.
    fallback
        ``item_id, score``: the global popularity ranking the fallback chain draws from (higher = better).
        ``None``: the fallback walks the catalogue by item id.

    Attributes
    ----------
    unknown_names_ : dict[str, list[str]]
        Categories and item ids the rules name but the catalogue lacks (logged as a warning: usually a
        typo, sometimes a campaign item not listed yet).

    Examples
    --------
    >>> rs = RuleSet(placements["for_you"], shop.items, fallback=popular)  # doctest: +SKIP
    >>> rs.apply(ranked, n=12, history=purchases, now=datetime(2025, 6, 1))  # doctest: +SKIP
    """

    def __init__(self, rules: PlacementRules, catalogue: pl.DataFrame, fallback: pl.DataFrame | None = None,
                 *, _index: CatalogueIndex | None = None) -> None:
        if not isinstance(rules, PlacementRules):
            raise ConfigError(
                "The 'rules' parameter of RuleSet must be a PlacementRules. "
                f"Got {type(rules).__name__} instead."
            )
        self.rules = rules
        self.catalogue = catalogue
        self.fallback = fallback
        cat = _index if _index is not None else CatalogueIndex.build(catalogue, fallback)
        self._cat = cat
        static_ok = cat.in_stock.copy() if rules.in_stock_only else np.ones(cat.n_items, dtype=bool)
        excluded_codes = cat.categories_of(rules.exclude_categories)
        if len(excluded_codes):
            static_ok &= ~np.isin(cat.category, excluded_codes)
        self._static_ok = static_ok
        include: frozenset[int] | None = None
        self._include_ok: np.ndarray | None = None
        if rules.include_categories:
            include = frozenset(cat.categories_of(rules.include_categories).tolist())
            self._include_ok = np.isin(cat.category, np.fromiter(include, dtype=np.int64))
        self._replen_ok = cat.replenishable != 0  # true or unknown: the buy-again model's "due" decides
        self._selector = Selector(
            item_cat=cat.category.tolist(),
            item_price=cat.price.tolist(),
            item_score=pl.Series(cat.pop_score).fill_nan(None).to_list(),
            include=include,
            max_per_category=rules.max_per_category,
            diversity=rules.diversity,
            mmr_lambda=rules.mmr_lambda,
            steps=rules.fallback,
            band=(rules.upsell.min_ratio, rules.upsell.max_ratio),
        )
        self._states: dict[tuple[tuple[bool, ...], ...], DatedState] = {}
        self._lock = threading.Lock()
        self.unknown_names_ = unknown_names(rules, cat)
        message = f"placement rules name things the catalogue does not have: {self.unknown_names_}"
        if self.unknown_names_ and message not in _WARNED:
            # Not an error: a rule may target items that come later (a campaign pin) or another shop's
            # categories (one placements file, several catalogues).  But a typo must be visible (once).
            _WARNED.add(message)
            log.warning(message)

    @classmethod
    def for_placements(cls, placements: Mapping[str, PlacementRules], catalogue: pl.DataFrame,
                       fallback: pl.DataFrame | None = None) -> dict[str, RuleSet]:
        """One ``RuleSet`` per placement, sharing a single catalogue index (what a service holds)."""
        index = CatalogueIndex.build(catalogue, fallback)
        return {name: cls(r, catalogue, fallback, _index=index) for name, r in placements.items()}

    def __repr__(self) -> str:
        return f"RuleSet(items={self._cat.n_items}, rules={self.rules!r})"

    # ------------------------------------------------------------------ dated entries
    def _state(self, now: datetime) -> DatedState:
        r = self.rules
        key = (tuple(b.active(now) for b in r.block), tuple(b.active(now) for b in r.boost),
               tuple(p.active(now) for p in r.pin))
        state = self._states.get(key)
        if state is None:
            state = dated_state(r, self._cat, self._static_ok, key)
            with self._lock:  # requests may run in threads; a long-running service crosses many windows
                while len(self._states) >= 16:
                    self._states.pop(next(iter(self._states)))
                self._states[key] = state
        return state

    # ------------------------------------------------------------------ public
    def apply(
        self,
        ranked: pl.DataFrame,
        *,
        n: int = 12,
        now: datetime,
        history: pl.DataFrame | None = None,
        replenish_due: pl.DataFrame | None = None,
        context_item_ids: Sequence[str] | None = None,
        customer_ids: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Apply the rules to ranked candidates and return the final lists.

        Parameters
        ----------
        ranked
            ``customer_id, item_id, score`` (higher = better) and, optionally, ``reason_type,
            source_item_id, source_ts`` (kept for candidates that make the list); any number of
            customers, any number of rows (including none).
        n
            List length per customer.
        now
            Reference time for validity windows and "bought in the last N days".
        history
            The customers' purchases: ``customer_id, item_id, ts`` and optionally ``price`` (unit price
            paid; the catalogue price is used when missing) and ``event`` (only ``purchase`` rows count).
        replenish_due
            ``customer_id, item_id, due``: items the buy-again model considers due.  A recently bought
            item stays recommendable when it is due and not marked ``replenishable = false`` in the
            catalogue (unknown counts as replenishable: the buy-again model learned it).
        context_item_ids
            Items on the page or in the cart: never recommended; they anchor the upsell band.
        customer_ids
            Customers to produce lists for in addition to those in ``ranked`` (pure fallback for them);
            output follows this order first, then the order of first appearance in ``ranked``.

        Returns
        -------
        pl.DataFrame
            ``customer_id, rank (Int32, 1..), item_id, score, reason_type, source_item_id, source_ts``.
            Candidates keep their (boosted) score and reason; pins keep the candidate score when they
            were candidates (else null); fallback rows carry the popularity score (null when none).
        """
        check_n(n, "apply")
        if not isinstance(now, datetime):
            raise ConfigError(
                f"The 'now' parameter of RuleSet.apply must be a datetime. Got {now!r} instead."
            )
        require(ranked, "ranked", ("customer_id", "item_id", "score"))
        if isinstance(customer_ids, str):
            customer_ids = [customer_ids]
        if isinstance(context_item_ids, str):
            context_item_ids = [context_item_ids]
        n = int(n)
        now = as_naive_utc(now)
        cat = self._cat
        if ranked["customer_id"].null_count() or ranked["item_id"].null_count():
            ranked = ranked.filter(pl.col("customer_id").is_not_null() & pl.col("item_id").is_not_null())

        # ---- customers and rows, encoded as integers
        ranked_cust = ranked["customer_id"].cast(pl.String)
        customers = customer_order(customer_ids, ranked_cust)
        C = len(customers)
        if C == 0 or n == 0:
            return empty_output(ranked)
        cust_code = {c: i for i, c in enumerate(customers)}
        r_cust = np.zeros(ranked.height, dtype=np.int64) if C == 1 else codes(ranked_cust, cust_code, None)
        r_item = codes(ranked["item_id"].cast(pl.String), cat.index, cat.index_frame)
        coded = encode_history(history, customers, cust_code, cat)
        return self._apply_encoded(ranked, customers, cust_code, r_cust, r_item, coded, n=n, now=now,
                                   replenish_due=replenish_due, context_item_ids=context_item_ids)

    def apply_codes(
        self,
        ranked: pl.DataFrame,
        customer_ids: Sequence[str],
        *,
        n: int = 12,
        now: datetime,
        history: pl.DataFrame | None = None,
        replenish_due: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """``apply`` for callers that already hold integer codes (batch jobs): no id is hashed here.

        Why: a campaign batch hands over ~100k candidates and the purchases behind them, already coded
        by its ``CampaignIndex``; mapping their string ids back to codes was a tenth of the rules' time.

        Parameters
        ----------
        ranked
            ``_c`` (position of the customer in ``customer_ids``), ``_i`` (position of the item in this
            rule set's catalogue: its distinct ``item_id`` values in order of first appearance), ``score``
            and optionally ``reason_type, source_item_id, source_ts``.
        customer_ids
            The customers, in output order; every one gets a list (fallback when it has no candidates).
        history
            ``_c, _i, ts`` and optionally ``price``: purchases only, ``_i`` null for items outside the
            catalogue.
        n, now, replenish_due
            As in ``apply``.

        Raises
        ------
        SchemaError
            A missing column, or a code outside its range.
        """
        check_n(n, "apply_codes")
        require(ranked, "ranked", ("_c", "_i", "score"))
        customers = [str(c) for c in customer_ids]
        C, N = len(customers), self._cat.n_items
        if C == 0 or int(n) == 0:
            return empty_output(ranked)
        r_cust = ranked["_c"].cast(pl.Int64).to_numpy()
        r_item = ranked["_i"].cast(pl.Int64).fill_null(-1).to_numpy()
        if len(r_cust) and (r_cust.min() < 0 or r_cust.max() >= C or r_item.max() >= N):
            raise SchemaError(f"ranked: '_c' must be in [0, {C}) and '_i' below {N} (the catalogue's size)",
                              source="ranked", column="_c")
        empty = np.zeros(0, dtype=np.int64)
        coded: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = (empty, empty, empty, np.zeros(0))
        if history is not None and history.height:
            require(history, "history", ("_c", "_i", "ts"))
            hc = history["_c"].cast(pl.Int64).fill_null(-1).to_numpy()
            hc = np.where(hc < C, hc, -1)  # (customers outside the list are no one's history)
            coded = history_arrays(history, hc, history["_i"].cast(pl.Int64).fill_null(-1).to_numpy())
        return self._apply_encoded(ranked, customers, {c: i for i, c in enumerate(customers)}, r_cust, r_item,
                                   coded, n=int(n), now=as_naive_utc(now), replenish_due=replenish_due,
                                   context_item_ids=None)

    def _apply_encoded(self, ranked: pl.DataFrame, customers: list[str], cust_code: dict[str, int],
                       r_cust: np.ndarray, r_item: np.ndarray,
                       hist: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], *, n: int, now: datetime,
                       replenish_due: pl.DataFrame | None,
                       context_item_ids: Sequence[str] | None) -> pl.DataFrame:
        """The rules on encoded rows: ``r_cust`` (customer code), ``r_item`` (catalogue index, -1 unknown)
        per row of ``ranked`` and the purchases ``(customer code, item index, ts µs, price or NaN)``."""
        cat, rules = self._cat, self.rules
        state = self._state(now)
        N = max(cat.n_items, 1)
        C = len(customers)
        r_score = ranked["score"].cast(pl.Float64).to_numpy().copy()  # nulls arrive as NaN
        r_score[np.isnan(r_score)] = -np.inf

        valid = r_item >= 0
        it = np.where(valid, r_item, 0)
        hard = valid & state.ok[it]
        ctx_items = cat.items_of([str(x) for x in context_item_ids or ()])
        if len(ctx_items):
            hard &= ~np.isin(it, ctx_items)

        # ---- history: recent purchases (hard) and upsell references (soft)
        h_cust, h_item, h_ts, h_price = hist
        bought_keys = np.zeros(0, dtype=np.int64)
        if rules.exclude_bought_days is not None and len(h_item):
            recent = np.ones(len(h_item), dtype=bool)
            if rules.exclude_bought_days > 0:
                recent = h_ts >= _to_us(now) - rules.exclude_bought_days * _US_PER_DAY
            bought_keys = unique_sorted(h_cust[recent] * N + h_item[recent])
            due_keys = due_item_keys(replenish_due, cust_code, cat, self._replen_ok, N)
            if len(due_keys):
                bought_keys = bought_keys[~in_sorted(bought_keys, due_keys)]
            if len(bought_keys):
                hard &= ~in_sorted(r_cust * N + it, bought_keys)

        inc = self._include_ok[it] if self._include_ok is not None else np.ones(len(it), dtype=bool)
        band = np.ones(len(it), dtype=bool)
        refs_of: Callable[[int], dict[int, float] | None] = _no_refs
        if rules.upsell.enabled:
            band, refs_of = upsell_band(cat, rules.upsell, r_cust, it, ctx_items, h_cust, h_item, h_ts,
                                        h_price, C)

        if state.factor is not None:
            f = state.factor[it]
            r_score = np.where(r_score >= 0, r_score * f, r_score / f)

        # ---- per customer: best row per item among hard-eligible rows, best first
        keep = best_first(r_cust, -r_score + 0.0, cat.id_rank[it])  # + 0.0: -0.0 sorts as 0.0 everywhere
        keep = keep[hard[keep]]
        if len(keep):  # duplicates: keep each item's best row (the first in this order)
            by_item = np.argsort(r_cust[keep] * N + it[keep], kind="stable")
            keys = (r_cust[keep] * N + it[keep])[by_item]
            first = np.ones(len(keys), dtype=bool)
            first[1:] = keys[1:] != keys[:-1]
            if not first.all():
                keep = keep[np.sort(by_item[first])]
        k_cust = r_cust[keep]
        k_bounds = np.searchsorted(k_cust, np.arange(C + 1)).tolist()
        k_rows, k_items = keep.tolist(), it[keep].tolist()
        k_cats, k_inc, k_band = cat.category[it[keep]].tolist(), inc[keep].tolist(), band[keep].tolist()
        k_scores = r_score[keep].tolist()

        # categories present in ranked (any known candidate), for category_trending
        cc_keys = unique_sorted(r_cust[valid] * (len(cat.categories) + 1) + (cat.category[it[valid]] + 1))
        cc_cust = cc_keys // (len(cat.categories) + 1)
        cc_cat = (cc_keys % (len(cat.categories) + 1) - 1).tolist()
        cc_bounds = np.searchsorted(cc_cust, np.arange(C + 1)).tolist()
        b_bounds = np.searchsorted(bought_keys, np.arange(C + 1) * N).tolist()
        b_items = (bought_keys % N).tolist()
        ctx_set = set(ctx_items.tolist())

        # Many customers, no pin, a diversity with a closed form: the first tier for everyone at once;
        # only customers it leaves short walk the full chain below (same lists: see ``first_tier``).
        full: list[bool] = [False] * C
        tier_picks: list[tuple[int, int, int, float | None]] = []
        t_bounds: list[int] = []
        if C >= BATCH_FIRST_TIER and not state.pins and rules.diversity in ("none", "round_robin"):
            at, count = first_tier(k_cust, cat.category[it[keep]], (inc & band)[keep], n=n, n_customers=C,
                                   diversity=rules.diversity, cap=rules.max_per_category)
            full = (count >= n).tolist()
            t_bounds = np.concatenate([[0], np.cumsum(count)]).tolist()
            rows_at = keep[at]
            tier_picks = list(zip(it[rows_at].tolist(), [KIND_CANDIDATE] * len(at), rows_at.tolist(),
                                  r_score[rows_at].tolist()))

        out_picks: list[tuple[int, int, int, float | None]] = []
        out_len: list[int] = []
        select = self._selector.select
        # no candidate, no pin and no fallback step: the walk has nothing to list (a campaign without fill)
        nothing_to_list = not state.pins and not rules.fallback
        for c in range(C):
            if full[c]:
                out_picks.extend(tier_picks[t_bounds[c]:t_bounds[c + 1]])
                out_len.append(n)
                continue
            lo, hi = k_bounds[c], k_bounds[c + 1]
            if lo == hi and nothing_to_list:
                out_len.append(0)
                continue
            excluded = set(b_items[b_bounds[c]:b_bounds[c + 1]])
            if ctx_set:
                excluded |= ctx_set
            picks = select(
                n, state.pools,
                rows=k_rows[lo:hi], items=k_items[lo:hi], cats=k_cats[lo:hi], inc=k_inc[lo:hi],
                band=k_band[lo:hi], scores=k_scores[lo:hi],
                customer_cats=cc_cat[cc_bounds[c]:cc_bounds[c + 1]],
                excluded=excluded, refs=refs_of(c), pins=state.pins,
            )
            out_picks.extend(picks)
            out_len.append(len(picks))
        return build_output(ranked, customers, out_len, out_picks, cat)


def apply_rules(
    ranked: pl.DataFrame,
    n: int = 12,
    *,
    rules: PlacementRules,
    catalogue: pl.DataFrame,
    now: datetime,
    history: pl.DataFrame | None = None,
    fallback: pl.DataFrame | None = None,
    replenish_due: pl.DataFrame | None = None,
    context_item_ids: Sequence[str] | None = None,
    customer_ids: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Convenience wrapper: ``RuleSet(rules, catalogue, fallback).apply(ranked, ...)``.

    It prepares the catalogue lookups on every call; a service should build the ``RuleSet`` once and
    call ``apply`` per request.  See ``RuleSet.apply`` for the parameters and the result.
    """
    return RuleSet(rules, catalogue, fallback).apply(
        ranked, n=n, now=now, history=history, replenish_due=replenish_due,
        context_item_ids=context_item_ids, customer_ids=customer_ids,
    )


# ---------------------------------------------------------------------- helpers
def _no_refs(c: int) -> None:
    return None


def _to_us(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

"""The per-customer greedy list builder: pins, diversity, caps and the fallback chain.

Why plain Python over small lists: by the time this runs, the vectorised stage has already sorted and
filtered the candidates, so a customer's work is "walk a few dozen entries until ``n`` slots are
full".  For the one-customer web request that is a few microseconds, far below what a dataframe
library's per-call overhead would cost, and the batch path reuses exactly the same code, so a batch
and a per-customer call cannot disagree.

Vocabulary: ``items``/``cats`` are catalogue indices and category codes (``-1`` = no category);
``excluded`` holds the customer's hard exclusions that the candidate stage already applied but the
fallback pools do not know about (recent purchases, context items).
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

__all__ = [
    "Pools", "Selector", "Pick", "first_tier", "BATCH_FIRST_TIER",
    "KIND_CANDIDATE", "KIND_PINNED", "KIND_TRENDING", "KIND_POPULAR",
]

KIND_CANDIDATE: Final = 0
KIND_PINNED: Final = 1
KIND_TRENDING: Final = 2
KIND_POPULAR: Final = 3

#: (item index, kind, row of ``ranked`` or -1, score or None)
Pick = tuple[int, int, int, "float | None"]


@dataclass(frozen=True)
class Pools:
    """Popularity-ordered items that pass the time-dependent hard rules (stock, blocks, excluded categories).

    ``items[p]`` is the p-th most popular eligible item; ``by_category[c]`` lists the positions ``p`` of
    category ``c`` (``-1`` for items without category), ascending, so several categories merge by
    position into the global order.
    """

    items: list[int]
    by_category: dict[int, list[int]]
    #: per category: (prices ascending, positions in the same order), items with a price only — the
    #: upsell band is then a ``searchsorted`` slice instead of a walk through the whole category.
    by_price: dict[int, tuple[np.ndarray, np.ndarray]]


class Selector:
    """Builds one customer's list; holds only what is constant for a prepared ``RuleSet``.

    ``select`` works on a shallow copy that carries the per-list state (chosen items, category
    counts), so one ``Selector`` can be shared by concurrent requests.
    """

    def __init__(
        self,
        *,
        item_cat: list[int],
        item_price: list[float],
        item_score: list[float | None],
        include: frozenset[int] | None,
        max_per_category: int | None,
        diversity: str,
        mmr_lambda: float,
        steps: Sequence[str],
        band: tuple[float, float],
    ) -> None:
        self.item_cat = item_cat
        self.item_price = item_price
        self.item_score = item_score
        self.include = include
        self.cap = max_per_category
        self.diversity = diversity
        self.lam = mmr_lambda
        self.steps = tuple(steps)
        self.lo_ratio, self.hi_ratio = band
        self._is_run = False

    # ------------------------------------------------------------------ entry point
    def select(
        self,
        n: int,
        pools: Pools,
        *,
        rows: Sequence[int],
        items: Sequence[int],
        cats: Sequence[int],
        inc: Sequence[bool],
        band: Sequence[bool],
        scores: Sequence[float],
        customer_cats: Iterable[int],
        excluded: set[int],
        refs: dict[int, float] | None,
        pins: Sequence[tuple[int, int]],
    ) -> list[Pick]:
        """The customer's final list, best first (at most ``n`` entries).

        Parameters
        ----------
        rows, items, cats, inc, band, scores
            The customer's candidates that pass the hard rules, one per item, best first.  ``inc`` and
            ``band`` say whether a candidate also passes include_categories and the upsell band.
        customer_cats
            Categories of the customer's candidates in ``ranked`` (for ``category_trending``).
        excluded
            Items the fallback must skip: recent purchases (not due) and context items.
        refs
            Upsell reference price per category, or ``None`` when the band does not apply.
        pins
            ``(position, item)`` already filtered by the time-dependent hard rules, in priority order.
        """
        if not self._is_run:
            run = copy.copy(self)
            run._is_run = True
            return run.select(n, pools, rows=rows, items=items, cats=cats, inc=inc, band=band, scores=scores,
                              customer_cats=customer_cats, excluded=excluded, refs=refs, pins=pins)
        self._counts: dict[int, int] = {}
        self._chosen: set[int] = set()
        slots: list[Pick | None] = [None] * n
        if pins:
            where = {it: k for k, it in enumerate(items)}
            for pos, it in pins:
                if it in excluded or it in self._chosen:
                    continue
                p = pos - 1
                while p < n and slots[p] is not None:
                    p += 1
                if p >= n:
                    continue
                k = where.get(it)
                slots[p] = (it, KIND_PINNED, -1, None) if k is None else (it, KIND_PINNED, rows[k], scores[k])
                self._mark(it, self.item_cat[it])
        free = n - len(self._chosen)
        picked: list[Pick] = []
        if free > 0:
            soft = [a and b for a, b in zip(inc, band)] if refs is not None else inc
            self._candidates(picked, free, rows, items, cats, soft, scores)
        cust_cats = set(customer_cats) - {-1}
        for step in self.steps:
            if len(picked) >= free:
                break
            self._fallback(picked, free, pools, step, cust_cats, excluded, refs, True, True, True)
        # Last resort, one soft rule at a time (never a hard one): the upsell band, then the category
        # cap, then include_categories (the placement's identity goes last).
        levels = []
        if refs is not None:
            levels.append((True, False, True))
        if self.cap is not None:
            levels.append((True, False, False))
        if self.include is not None:
            levels.append((False, False, False))
        for use_inc, use_band, use_cap in levels:
            if len(picked) >= free:
                break
            for k, it in enumerate(items):
                if len(picked) >= free:
                    break
                if (it not in self._chosen and (inc[k] or not use_inc) and (band[k] or not use_band)
                        and (not use_cap or self._fits(cats[k]))):
                    picked.append((it, KIND_CANDIDATE, rows[k], scores[k]))
                    self._mark(it, cats[k])
            for step in self.steps:
                if len(picked) >= free:
                    break
                self._fallback(picked, free, pools, step, cust_cats, excluded, refs,
                               use_inc, use_band, use_cap)
        out: list[Pick] = []
        fill = iter(picked)
        for slot in slots:
            entry = slot if slot is not None else next(fill, None)
            if entry is not None:
                out.append(entry)
        return out

    # ------------------------------------------------------------------ helpers
    def _mark(self, it: int, c: int) -> None:
        self._chosen.add(it)
        if c >= 0:
            self._counts[c] = self._counts.get(c, 0) + 1

    def _fits(self, c: int) -> bool:
        return self.cap is None or c < 0 or self._counts.get(c, 0) < self.cap

    def _candidates(
        self,
        picked: list[Pick],
        free: int,
        rows: Sequence[int],
        items: Sequence[int],
        cats: Sequence[int],
        soft: Sequence[bool],
        scores: Sequence[float],
    ) -> None:
        """Tier 0: candidates passing every rule, in score order or diversified, within the caps."""
        chosen = self._chosen
        if self.diversity == "none":
            for k, it in enumerate(items):
                if len(picked) >= free:
                    return
                if soft[k] and it not in chosen and self._fits(cats[k]):
                    picked.append((it, KIND_CANDIDATE, rows[k], scores[k]))
                    self._mark(it, cats[k])
            return
        # Group by category in order of each group's best item; an item without category is its own group.
        groups: dict[int, list[int]] = {}
        order: list[int] = []
        for k, (it, c, ok) in enumerate(zip(items, cats, soft)):
            if ok and it not in chosen:
                key = c if c >= 0 else -2 - k
                g = groups.get(key)
                if g is None:
                    groups[key] = [k]
                    order.append(key)
                else:
                    g.append(k)
        if self.diversity == "round_robin":
            self._round_robin(picked, free, groups, order, rows, items, cats, scores)
        else:
            self._mmr(picked, free, groups, order, rows, items, cats, scores)

    def _take(self, picked: list[Pick], k: int, rows: Sequence[int], items: Sequence[int],
              cats: Sequence[int], scores: Sequence[float]) -> None:
        picked.append((items[k], KIND_CANDIDATE, rows[k], scores[k]))
        self._mark(items[k], cats[k])

    def _round_robin(self, picked: list[Pick], free: int, groups: dict[int, list[int]], order: list[int],
                     rows: Sequence[int], items: Sequence[int], cats: Sequence[int],
                     scores: Sequence[float]) -> None:
        ptr = dict.fromkeys(order, 0)
        while order and len(picked) < free:
            survivors = []
            for key in order:
                if len(picked) >= free:
                    return
                g, i = groups[key], ptr[key]
                if not self._fits(key):
                    continue
                self._take(picked, g[i], rows, items, cats, scores)
                ptr[key] = i + 1
                if i + 1 < len(g):
                    survivors.append(key)
            order = survivors

    def _mmr(self, picked: list[Pick], free: int, groups: dict[int, list[int]], order: list[int],
             rows: Sequence[int], items: Sequence[int], cats: Sequence[int], scores: Sequence[float]) -> None:
        """Maximal marginal relevance with similarity = "same category as something already listed".

        Candidates arrive best first, so relevance falls with position and the best remaining item of a
        category is its first untaken one.  Each step therefore compares just two items: the head of the
        first category not listed yet (no penalty) and the best head among listed categories (penalty
        ``1 - lambda``), kept in a small heap: O(log n) per step instead of O(candidates).
        """
        members = [k for g in groups.values() for k in g]
        if not members:
            return
        top, bottom = scores[min(members)], scores[max(members)]
        span = top - bottom
        flat = not (span > 0) or span == float("inf")  # all equal, or unbounded: relevance carries no signal

        def rel(k: int) -> float:
            if flat:
                return 1.0
            s = scores[k]
            return 0.0 if s == float("-inf") else (s - bottom) / span

        lam, penalty = self.lam, 1.0 - self.lam
        ptr = dict.fromkeys(order, 0)
        seen = {c for c, v in self._counts.items() if v > 0}
        heap = [(groups[c][0], c) for c in seen if c in groups]  # (head position, group) of listed categories
        heapq.heapify(heap)
        u = 0
        while len(picked) < free:
            while u < len(order) and (order[u] in seen or not self._fits(order[u])):
                u += 1
            new_key = order[u] if u < len(order) else None
            while heap and not self._fits(heap[0][1]):
                heapq.heappop(heap)  # category reached its cap: drop it
            if new_key is None and not heap:
                return
            if new_key is not None and (
                not heap or lam * rel(groups[new_key][0]) >= lam * rel(heap[0][0]) - penalty
            ):
                key, k = new_key, groups[new_key][0]
                if key >= 0:
                    seen.add(key)
                u += 1
            else:
                k, key = heapq.heappop(heap)
            self._take(picked, k, rows, items, cats, scores)
            i = ptr[key] = ptr[key] + 1
            if key >= 0 and i < len(groups[key]):
                heapq.heappush(heap, (groups[key][i], key))

    def _fallback(self, picked: list[Pick], free: int, pools: Pools, step: str, cust_cats: set[int],
                  excluded: set[int], refs: dict[int, float] | None,
                  use_inc: bool, use_band: bool, use_cap: bool) -> None:
        """Fill from popularity: within the customer's categories (``category_trending``) or globally,
        under the soft rules still in force."""
        kind = KIND_TRENDING if step == "category_trending" else KIND_POPULAR
        allowed: set[int] | None = set(cust_cats) if step == "category_trending" else None
        if step == "category_trending" and not allowed:
            return
        band = refs if (refs is not None and use_band) else None
        cap = use_cap and self.cap is not None
        if use_inc and self.include is not None:
            allowed = set(self.include) if allowed is None else allowed & self.include
        if band is not None:
            allowed = set(band) if allowed is None else allowed & set(band)
        chosen, score = self._chosen, self.item_score
        if allowed is None and not cap:  # plain walk down the global popularity order
            for it in pools.items:
                if it in chosen or it in excluded:
                    continue
                picked.append((it, kind, -1, score[it]))
                self._mark(it, self.item_cat[it])
                if len(picked) >= free:
                    return
            return
        keys = pools.by_category.keys() if allowed is None else allowed
        streams: dict[int, list[int]] = {}
        for c in keys:
            if c not in pools.by_category or (cap and not self._fits(c)):
                continue
            if band is None:
                streams[c] = pools.by_category[c]
                continue
            found = pools.by_price.get(c)
            if found is None:
                continue
            prices, positions = found
            ref = band[c]
            lo = int(np.searchsorted(prices, self.lo_ratio * ref, side="left"))
            hi = int(np.searchsorted(prices, self.hi_ratio * ref, side="right"))
            if hi <= lo:
                continue
            inside = positions[lo:hi]
            enough = free - len(picked) + len(excluded) + len(chosen)  # what skipping could ever need
            if len(inside) > enough:
                inside = np.partition(inside, enough - 1)[:enough]
            streams[c] = np.sort(inside).tolist()
        heap = [(lst[0], c, 0) for c, lst in streams.items()]
        heapq.heapify(heap)
        while heap:
            pos, c, i = heapq.heappop(heap)
            if cap and not self._fits(c):
                continue  # the category is full: drop its whole stream
            it = pools.items[pos]
            if it not in chosen and it not in excluded:
                picked.append((it, kind, -1, score[it]))
                self._mark(it, c)
                if len(picked) >= free:
                    return
            lst = streams[c]
            if i + 1 < len(lst):
                heapq.heappush(heap, (lst[i + 1], c, i + 1))


#: Fewest customers in one ``apply`` call for which ``first_tier`` is worth its fixed numpy cost.
BATCH_FIRST_TIER: Final = 64


def first_tier(cust: np.ndarray, cats: np.ndarray, soft: np.ndarray, *, n: int, n_customers: int,
               diversity: str, cap: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``Selector``'s first tier (candidates passing every rule, diversified, within the caps) for many
    customers at once, as array passes instead of a Python walk per customer.

    Why: a campaign applies the email rules to thousands of customers per batch, and walking every
    customer's few dozen candidates in Python is the largest single cost of the rules there.  The
    walk's result has a closed form when no pin is active and diversity is ``none`` or
    ``round_robin``: with ``r`` = a candidate's rank among its customer's passing candidates of the
    same category (0-based; a candidate without category is a category of its own), a category cap
    keeps the candidates with ``r < cap``; ``none`` takes them in score order, ``round_robin`` in the
    order ``(r, position of the category's best candidate)`` — round ``r`` visits every category still
    holding candidates, best category first.  The first ``n`` of that order are the walk's picks.
    Customers it gives fewer than ``n`` picks need the fallback chain and relaxation: the caller runs
    the full walk for them (``Selector.select``), so the lists are exactly the walk's (tested).

    Parameters
    ----------
    cust, cats, soft
        Per candidate row, grouped by customer and best first within each customer (the engine's
        order): customer code, category code (-1 = none), passes the soft rules.
    n, n_customers, diversity, cap
        List length, number of customer codes, the placement's diversity and ``max_per_category``.

    Returns
    -------
    (rows, count)
        Positions (into ``cust``) of the picks, customer by customer in list order, and the number of
        picks per customer code.
    """
    if diversity not in ("none", "round_robin"):
        raise ValueError(f"first_tier handles diversity 'none' and 'round_robin', not {diversity!r}")
    pos = np.flatnonzero(soft)
    c, g = cust[pos].astype(np.int64), cats[pos].astype(np.int64)
    # a candidate without category is a category of its own: a key no other row shares
    n_cat = int(g.max(initial=-1)) + 2
    key = np.where(g >= 0, c * n_cat + g, -1 - np.arange(len(pos), dtype=np.int64))
    by_key = np.argsort(key, kind="stable")  # within a key, best first
    sorted_key = key[by_key]
    start = np.ones(len(pos), dtype=bool)
    start[1:] = sorted_key[1:] != sorted_key[:-1]
    seg = np.cumsum(start) - 1  # key number of each sorted row
    seg_start = np.flatnonzero(start)
    r = np.empty(len(pos), dtype=np.int64)
    r[by_key] = np.arange(len(pos)) - seg_start[seg]
    head = np.empty(len(pos), dtype=np.int64)  # position of the key's best candidate
    head[by_key] = by_key[seg_start][seg]
    keep = r < cap if cap is not None else np.ones(len(pos), dtype=bool)
    idx = np.flatnonzero(keep)
    if diversity == "round_robin":
        order = idx[np.lexsort((head[idx], r[idx], c[idx]))]
    else:
        order = idx  # already by customer, best first
    oc = c[order]
    starts = np.searchsorted(oc, np.arange(n_customers))
    within = np.arange(len(order)) - starts[oc]
    take = order[within < n]
    count = np.bincount(c[take], minlength=n_customers)
    return pos[take], count

"""``OnlineRecommender``: one loaded bundle answering single website requests, with real-time fold-in.

Why separate from the HTTP layer: everything a widget needs — customer candidates, the page or cart
context, business rules per placement, filters, explanations, events folding into the next answer — is
recommender logic and is tested here without a server; ``serving/`` only parses, authenticates and maps
errors to HTTP codes.  One instance serves one bundle version; a model swap builds a new instance and
replaces the reference in one assignment, so a request never sees two versions.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from recsys.bundle import Bundle
from recsys.feedback import NotInterested
from recsys.models.base import PAD_ID
from recsys.ranking._candidates import SOURCED_REASONS
from recsys.rules import PlacementRules, RuleSet

__all__ = ["OnlineRecommender", "Filters", "PLACEMENTS", "SOURCED_REASONS"]

log = logging.getLogger(__name__)

PLACEMENTS = ("product_page", "cart", "home", "for_you", "email")
#: How much the page/cart context weighs against the customer's own history, per placement.
CONTEXT_WEIGHT = {"product_page": 2.0, "cart": 2.0, "home": 0.5, "for_you": 0.5, "email": 0.5}
_RRF_K = 20.0


@dataclass(frozen=True)
class Filters:
    """A request's item filters: categories to keep or drop, items to drop, a price band.  Frozen and
    hashable because they are part of the answer cache's key."""

    categories: tuple[str, ...] = ()
    exclude_item_ids: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None
    exclude_categories: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """True when any filter is set: only then are the filter passes run and a deeper list asked for."""
        return bool(self.categories or self.exclude_item_ids or self.price_min is not None
                    or self.price_max is not None or self.exclude_categories)


@dataclass
class _Cache:
    """Small LRU of final answers; a customer's entries are dropped when their events arrive.

    Keys start with the customer id; ``by_customer`` indexes them so dropping one customer's answers
    costs their entries, not a scan of the whole cache (the scan was 22 % of the worker's time under
    realistic traffic with events).  ``size`` counts entries: an answer takes two (the list and its JSON).
    """

    size: int = 40_000
    data: OrderedDict[tuple[Any, ...], Any] = field(default_factory=OrderedDict)
    by_customer: dict[Any, set[tuple[Any, ...]]] = field(default_factory=dict)

    def get(self, key: tuple[Any, ...]) -> Any | None:
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
        return value

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        self.data[key] = value
        self.by_customer.setdefault(key[0], set()).add(key)
        if len(self.data) > self.size:
            old, _ = self.data.popitem(last=False)
            keys = self.by_customer.get(old[0])
            if keys is not None:
                keys.discard(old)
                if not keys:
                    del self.by_customer[old[0]]

    def drop_customer(self, customer_id: str) -> None:
        for key in self.by_customer.pop(customer_id, ()):
            self.data.pop(key, None)

    def clear(self) -> None:
        self.data.clear()
        self.by_customer.clear()


class OnlineRecommender:
    """Serve one bundle: ``recommend`` / ``complements`` / ``similar`` / ``popular`` / ``ingest``.

    Parameters
    ----------
    bundle
        A loaded ``Bundle``.
    placements
        ``PlacementRules`` per placement name (``configs/placements.yaml``).
    version
        The tag the answers carry as ``model_version``.
    """

    def __init__(self, bundle: Bundle, placements: dict[str, PlacementRules], *, version: str) -> None:
        self.bundle = bundle
        self.hybrid = bundle.hybrid
        self.version = version
        self.lock = threading.RLock()
        ids, scores = self.hybrid.popularity.popular(500)
        keep = ids != PAD_ID
        self.popular_frame = pl.DataFrame({"item_id": ids[keep].astype(str), "score": scores[keep].astype(np.float64)})
        unknown = {p for p in set(placements) - set(PLACEMENTS) if not p.startswith("email_")}  # email_*: campaigns
        if unknown:
            log.warning("placements %s are not served (known: %s)", sorted(unknown), PLACEMENTS)
        self.rules = RuleSet.for_placements(
            {p: placements.get(p, PlacementRules()) for p in PLACEMENTS}, bundle.catalogue, fallback=self.popular_frame
        )
        cat = bundle.catalogue.select("item_id", "category", "price", "name")
        self.item_category = dict(zip(cat["item_id"].to_list(), cat["category"].to_list(), strict=True))
        self.item_price = dict(zip(cat["item_id"].to_list(), cat["price"].to_list(), strict=True))
        self.item_name = dict(zip(cat["item_id"].to_list(), cat["name"].to_list(), strict=True))
        #: The data clock: the model's reference time, moved forward only by folded-in purchases.  What
        #: may reach it is the caller's to bound (serving/ refuses timestamps beyond now + a small skew).
        self.clock: datetime = self.hybrid.as_of
        #: The first purchase of the model's data: events from before it are refused at the edge.
        first = self.hybrid.history.frame["ts"].min()
        self.data_start: datetime = first if isinstance(first, datetime) else self.clock
        self.carts: dict[str, list[str]] = {}
        self.not_interested = NotInterested()  # customers' dismissals (recsys.feedback), folded by serving/
        self.cache = _Cache()
        #: Ranked candidates per known customer, computed in batch (cheap per customer) when a version
        #: is loaded; a customer's entry is dropped when their events arrive, so they take the live path.
        self.precomputed: dict[str, pl.DataFrame] = {}
        self._popular_cache: dict[tuple[str | None, int], tuple[np.ndarray, np.ndarray]] = {}

    def precompute(self, *, batch: int = 2000, max_customers: int | None = None) -> int:
        """Rank every known customer's candidates in batches (the batch path costs a fraction of the
        per-request path); returns how many customers are ready.  Safe to call before the swap."""
        ids = self.hybrid.history.customers.ids.tolist()
        if max_customers is not None and len(ids) > max_customers:
            # the most recently active first: they are the likeliest visitors; the rest take the live path
            last = (self.hybrid.history.frame.group_by("customer_id").agg(pl.col("ts").max())
                    .sort(["ts", "customer_id"], descending=[True, False]).head(max_customers))
            ids = last["customer_id"].sort().to_list()
        done = 0
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            ranked = self.hybrid.rank(chunk, self.clock)
            parts = ranked.select("customer_id", "item_id", "score", "reason_type", "source_item_id",
                                  "source_ts").partition_by("customer_id", as_dict=True, maintain_order=True)
            with self.lock:
                for (cid,), frame in parts.items():
                    if cid in self.hybrid.history:  # not forgotten meanwhile
                        self.precomputed[cid] = frame
            done += len(chunk)
        return done

    # ------------------------------------------------------------------ facts
    def knows_customer(self, customer_id: str) -> bool:
        """True when the customer has a purchase history (trained or folded in); others are cold starts."""
        return customer_id in self.hybrid.history

    def knows_item(self, item_id: str) -> bool:
        """True when the item is in the bundle's catalogue."""
        return item_id in self.item_category

    # --------------------------------------------------------------- queries
    def recommend(
        self,
        customer_id: str | None,
        *,
        placement: str = "for_you",
        n: int = 12,
        context_item_ids: Sequence[str] = (),
        filters: Filters = Filters(),
        now: datetime | None = None,
        render: tuple[str, Callable[[pl.DataFrame], Any]] | None = None,
    ) -> Any:
        """Final list for one widget: ``item_id, score, category, reason_type, source_item_id, source_ts``.

        Unknown customers and unknown items are cold starts, never errors: the answer falls back to
        the context's complements, the customer's categories' trending items, then popular items.

        ``render = (name, fn)`` returns ``fn(list)`` instead, cached under ``name`` next to the list:
        the service turns the list into response objects once per answer, not once per request (a
        cached answer is then ~2 µs instead of ~90 µs of object building).  Events invalidate both.
        """
        with self.lock:
            filters = self.not_interested.filters(customer_id, filters, now or self.clock)
            cart = tuple(self.carts.get(customer_id, ())) if customer_id else ()
            context = tuple(dict.fromkeys([*context_item_ids, *cart]))
            # an explicit ``now`` is part of the question: the same customer a month later has other
            # buy-again items due (``None``: the clock, whose moves invalidate the cache anyway)
            key = (customer_id, placement, n, context, filters, now)
            if render is not None:
                rendered = self.cache.get((*key, render[0]))
                if rendered is not None:
                    return rendered
            out = self.cache.get(key)
            if out is None:
                out = self._recommend(customer_id, placement, n, context, filters, now or self.clock)
                self.cache.put(key, out)
            if render is None:
                return out
            rendered = render[1](out)
            self.cache.put((*key, render[0]), rendered)
            return rendered

    def _recommend(self, customer_id: str | None, placement: str, n: int, context: tuple[str, ...],
                   filters: Filters, now: datetime) -> pl.DataFrame:
        known = customer_id is not None and self.knows_customer(customer_id)
        cid = customer_id if customer_id is not None else "__anonymous__"
        parts = []
        if known:
            ranked = self.precomputed.get(cid)
            if ranked is None:
                ranked = self.hybrid.rank_one(cid, now)
            parts.append((ranked, 1.0))
        ctx = self._context_candidates(cid, [i for i in context if self.knows_item(i)])
        if ctx.height:
            parts.append((ctx, CONTEXT_WEIGHT.get(placement, 1.0)))
        ranked = _fuse(parts) if len(parts) > 1 else (parts[0][0] if parts else _empty_ranked())
        if len(parts) > 1:  # the fused list; single rankings (own, context, empty) carry the customer id
            ranked = ranked.with_columns(pl.lit(cid).alias("customer_id"))
        if filters.active:
            ranked = self._filter(ranked, filters)
        want = n + len(filters.exclude_item_ids) + (2 * n if filters.active else 0)
        history = self.hybrid.history.of(cid) if known else None
        out = self.rules[placement].apply(
            ranked.select("customer_id", "item_id", "score", "reason_type", "source_item_id", "source_ts"),
            n=want, now=now, history=history, context_item_ids=list(context), customer_ids=[cid],
        )
        if filters.active:
            out = self._filter(out, filters)
            if out.height < n:
                out = pl.concat([out, self._filtered_popular(filters, exclude=[*out["item_id"], *context],
                                                             n=n - out.height, cid=cid)], how="diagonal_relaxed")
        out = _consistent_reasons(out.head(n))
        # a dict lookup per returned item: replace_strict would turn the whole catalogue dict into a
        # mapping on every request (~20 ms for 92k items)
        cats = pl.Series("category", [self.item_category.get(i) for i in out["item_id"].to_list()], dtype=pl.String)
        return out.with_columns(cats).select("item_id", "score", "category", "reason_type", "source_item_id",
                                             "source_ts")

    def _context_candidates(self, cid: str, items: list[str]) -> pl.DataFrame:
        """Complements of the page/cart items: bought-with items, then popular items of complement categories."""
        if not items:
            return _empty_ranked()
        rows: list[dict[str, Any]] = []
        gens = self.hybrid.generators
        cop = gens.get("copurchase")
        if cop is not None:
            ids, scores = cop.complements(items, 30)  # type: ignore[attr-defined]
            for i, s in zip(ids, scores, strict=True):
                if i != PAD_ID:
                    rows.append({"item_id": i, "score": float(s), "reason_type": "bought_with",
                                 "source_item_id": items[0]})
        cc = gens.get("category_complements")
        if cc is not None:
            cats = [c for c in dict.fromkeys(self.item_category.get(i) for i in items) if c]
            known_cats = [c for c in cats if c in cc.category_index_]  # type: ignore[attr-defined]
            if known_cats:
                comp = cc.complements(known_cats, 4)  # type: ignore[attr-defined]
                src_of = {self.item_category.get(i): i for i in items}
                for source, target, lift in comp.select("source", "target", "lift").iter_rows():
                    ids, scores = self._popular_in(target, 6)
                    for rank, (i, s) in enumerate(zip(ids, scores, strict=True)):
                        if i != PAD_ID:
                            rows.append({"item_id": i, "score": float(lift) / (1.0 + rank),
                                         "reason_type": "complements_category", "source_item_id": src_of.get(source)})
        if not rows:
            return _empty_ranked()
        frame = pl.DataFrame(rows, schema={"item_id": pl.String, "score": pl.Float64, "reason_type": pl.String,
                                           "source_item_id": pl.String})
        return (
            frame.sort("score", descending=True).unique("item_id", keep="first", maintain_order=True)
            .with_columns(pl.lit(cid).alias("customer_id"), pl.lit(None, pl.Datetime("us")).alias("source_ts"))
        )

    def _popular_in(self, category: str | None, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Bestsellers of a category, memoised: fixed for a bundle, and a scan of the whole catalogue."""
        key = (category, n)
        hit = self._popular_cache.get(key)
        if hit is None:
            hit = self.hybrid.popularity.popular(n, category=category)
            self._popular_cache[key] = hit
        return hit

    def _filter(self, frame: pl.DataFrame, f: Filters) -> pl.DataFrame:
        ids = frame["item_id"].to_list()
        keep = [
            (not f.categories or self.item_category.get(i) in f.categories)
            and i not in f.exclude_item_ids
            and (not f.exclude_categories or self.item_category.get(i) not in f.exclude_categories)
            and _in_band(self.item_price.get(i), f.price_min, f.price_max)
            for i in ids
        ]
        return frame.filter(pl.Series(keep, dtype=pl.Boolean))

    def _filtered_popular(self, f: Filters, *, exclude: Sequence[str], n: int, cid: str) -> pl.DataFrame:
        pool = self._filter(self.popular_frame, f).filter(~pl.col("item_id").is_in(list(exclude))).head(n)
        return pool.with_columns(
            pl.lit(cid).alias("customer_id"), pl.lit("popular").alias("reason_type"),
            pl.lit(None, pl.String).alias("source_item_id"), pl.lit(None, pl.Datetime("us")).alias("source_ts"),
        )

    def complements(self, item_ids: Sequence[str], n: int = 12) -> pl.DataFrame:
        """"Goes well with": complements of a product or cart, for anonymous visitors too."""
        return self.recommend(None, placement="cart" if len(item_ids) > 1 else "product_page", n=n,
                              context_item_ids=item_ids)

    def similar(self, item_id: str, n: int = 12) -> pl.DataFrame:
        """Items like this one (item-KNN), falling back to popular items of its category."""
        rows: list[tuple[str, float, str]] = []
        knn = self.hybrid.generators.get("item_knn") or self.hybrid.generators.get("als")
        if knn is not None and self.knows_item(item_id):
            ids, scores = knn.similar([item_id], n, on_unknown="empty")  # type: ignore[attr-defined]
            rows += [(i, float(s), "similar_items") for i, s in zip(ids[0], scores[0], strict=True) if i != PAD_ID]
        if len(rows) < n:
            cat = self.item_category.get(item_id)
            ids, scores = self._popular_in(cat, n + len(rows) + 1)
            seen = {r[0] for r in rows} | {item_id}
            rows += [(i, float(s), "popular") for i, s in zip(ids, scores, strict=True)
                     if i != PAD_ID and i not in seen][: n - len(rows)]
        return self._plain(rows[:n])

    def popular(self, category: str | None = None, n: int = 12) -> pl.DataFrame:
        """Bestsellers overall or in a category (unknown category: empty list)."""
        ids, scores = self._popular_in(category, n)
        return self._plain([(i, float(s), "popular") for i, s in zip(ids, scores, strict=True) if i != PAD_ID])

    def _plain(self, rows: list[tuple[str, float, str]]) -> pl.DataFrame:
        return pl.DataFrame(
            {"item_id": [r[0] for r in rows], "score": [r[1] for r in rows],
             "category": [self.item_category.get(r[0]) for r in rows], "reason_type": [r[2] for r in rows],
             "source_item_id": [None] * len(rows), "source_ts": [None] * len(rows)},
            schema={"item_id": pl.String, "score": pl.Float64, "category": pl.String, "reason_type": pl.String,
                    "source_item_id": pl.String, "source_ts": pl.Datetime("us")},
        )

    # ---------------------------------------------------------------- events
    def ingest(self, events: pl.DataFrame) -> dict[str, int]:
        """Fold events in: purchases update history and every generator's customer state (no retrain);
        cart events set the customer's cart (its complements drive the next answer); a purchase empties it.

        Deterministic: the same batches in the same order give the same state (a stable sort; events of
        items the catalogue does not have change nothing but are counted as ``unknown``), so a restart
        that replays the stored events, or another worker reading them, reaches this worker's state.
        """
        with self.lock:
            counts = {"purchase": 0, "cart": 0, "other": 0, "unknown": 0}
            if events.height == 0:
                return counts
            known = pl.Series([self.knows_item(i) for i in events["item_id"].to_list()], dtype=pl.Boolean)
            counts["unknown"] = events.height - int(known.sum())
            events = events.filter(known).sort("ts", maintain_order=True)
            purchases = events.filter(pl.col("event") == "purchase")
            for cid, item, ev in events.select("customer_id", "item_id", "event").iter_rows():
                if ev == "cart":
                    cart = self.carts.setdefault(cid, [])
                    if item not in cart:
                        cart.append(item)
                    counts["cart"] += 1
                elif ev == "purchase":
                    self.carts.pop(cid, None)
                    counts["purchase"] += 1
                else:
                    counts["other"] += 1
                self.cache.drop_customer(cid)
                if ev == "purchase":
                    self.precomputed.pop(cid, None)
            if purchases.height:  # every event left is of a catalogue item (filtered above)
                self.hybrid.history.append(purchases)
                for name, gen in self.hybrid.generators.items():
                    try:
                        gen.partial_fit(purchases)
                    except NotImplementedError:
                        continue
                    except Exception:  # noqa: BLE001 - one generator's fold-in failure must not drop the event
                        log.exception("fold-in failed for generator %s", name)
                latest = purchases["ts"].max()
                if isinstance(latest, datetime) and latest > self.clock:
                    # Other customers keep their precomputed ranking (hours-stale recency features);
                    # customers with new events were dropped above and are ranked live.  Cached answers
                    # were computed at the old clock (dated rules, "bought in the last N days"): drop
                    # them, so an answer depends on the events folded in, not on when it was first asked.
                    self.clock = latest
                    self.cache.clear()
            return counts

    def forget(self, customer_ids: Sequence[str]) -> int:
        """Erase customers from the served state at once (history, generator state, carts, cache)."""
        with self.lock:
            removed = self.hybrid.history.forget(customer_ids)
            for gen in self.hybrid.generators.values():
                try:
                    gen.forget(customer_ids)
                except NotImplementedError:
                    continue
            self.not_interested.forget(customer_ids)
            for cid in customer_ids:
                self.carts.pop(cid, None)
                self.cache.drop_customer(cid)
                self.precomputed.pop(cid, None)
            return removed


def _in_band(price: float | None, lo: float | None, hi: float | None) -> bool:
    if lo is None and hi is None:
        return True
    if price is None:
        return False
    return (lo is None or price >= lo) and (hi is None or price <= hi)


def _consistent_reasons(frame: pl.DataFrame) -> pl.DataFrame:
    """Source item and date only where the reason type is about a source (``SOURCED_REASONS``)."""
    if frame.height == 0:
        return frame
    sourced = pl.col("reason_type").is_in(list(SOURCED_REASONS)).fill_null(False)
    return frame.with_columns(
        pl.when(sourced).then(pl.col("source_item_id")).otherwise(None).alias("source_item_id"),
        pl.when(sourced).then(pl.col("source_ts")).otherwise(None).alias("source_ts"),
    )


def _empty_ranked() -> pl.DataFrame:
    return pl.DataFrame(schema={"customer_id": pl.String, "item_id": pl.String, "score": pl.Float64,
                                "reason_type": pl.String, "source_item_id": pl.String,
                                "source_ts": pl.Datetime("us")})


def _fuse(parts: list[tuple[pl.DataFrame, float]]) -> pl.DataFrame:
    """Reciprocal-rank fusion of several ranked lists for one customer, keeping the best reason."""
    frames = []
    for frame, weight in parts:
        f = frame.select("item_id", "reason_type", "source_item_id", "source_ts", pl.col("score").cast(pl.Float64))
        f = f.sort("score", descending=True).with_row_index("_r").with_columns(
            (weight / (_RRF_K + pl.col("_r").cast(pl.Float64) + 1.0)).alias("_w")
        )
        frames.append(f)
    both = pl.concat(frames, how="vertical_relaxed")
    return (
        both.sort("_w", descending=True)
        .group_by("item_id", maintain_order=True)
        .agg(pl.col("_w").sum().alias("score"), pl.col("reason_type").first(), pl.col("source_item_id").first(),
             pl.col("source_ts").first())
        .sort("score", descending=True)
    )

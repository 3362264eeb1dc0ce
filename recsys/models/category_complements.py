"""The directional category-complement graph: "bought trousers → soon buys a belt".

Why directional and sequential: the cross-sell that pays is the *next* purchase a purchase
implies.  Belts follow trousers; trousers do not follow belts.  Symmetric co-occurrence (or
customer-level "people who buy A also buy B") cannot tell the two apart, and confounds style (formal
shoppers buy both) with cause.  So for every ordered category pair ``A → B`` this module counts how
often ``B`` is bought within ``window_days`` *after* an ``A`` purchase, and compares it with two
controls:

* the **date-matched base rate** — how often ``B`` follows *any* purchase made in the same calendar
  week (so Christmas goods following November purchases, or gloves following anything in winter,
  is not a complement);
* the **reverse-time rate** — how often ``B`` was bought within ``window_days`` *before* the same
  ``A`` purchases (so a pair that merely co-occurs in the same customers, or where ``B`` causes
  ``A``, is not a complement of ``A``).

``lift = P(B within window after A) / max(date-matched base, reverse-time rate)``, with both
probabilities shrunk toward the base by ``shrinkage`` pseudo-triggers.

How it stays fast (Complete Journey, 1.47M lines, 303 categories: ~1 s): purchases are reduced to
unique ``(customer, category, day)`` rows; for each ``B`` purchase the set of earlier days for which
it is the *first* later ``B`` is one contiguous range of the customer's day timeline (ranges of one
``(customer, B)`` never overlap), so a difference array + cumulative sum gives, per customer-day,
"is some ``B`` bought within the window after this day" for every ``B`` at once; sparse products
with the day → category incidence then count hits per ``(A, B)``.  Work is O(customer-days ×
categories), independent of the window length, processed in customer-aligned chunks.

Merchandisers can correct the learned graph with an override YAML (see
``configs/complements_overrides.yaml``): ``pin`` (always first), ``add`` (with a given lift) and
``remove`` per source category; overrides always win.
"""

from __future__ import annotations

import difflib
import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
import yaml

from recsys._io import atomic_write_text
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError, ModelFitError, UnknownIdError
from recsys.idmap import IdMap
from recsys.models._util import (
    ITEM_HALF_LIFE_DAYS,
    binary_matrix,
    bought_keys,
    csr_of,
    decayed_item_counts,
    encode,
    expand_ranges,
    group_candidates,
    group_index,
    merge_bought,
    pack,
    purchases_only,
    rank_within,
    ranked_group_items,
    remove_rows,
    resolve_rows,
    to_us,
    top_per_position,
)
from recsys.models.base import Explained, OnUnknown, Recommender, check_param

__all__ = ["CategoryComplements", "CategoryOverride", "load_overrides", "sequence_counts", "SequenceCounts"]

log = logging.getLogger(__name__)

_US_PER_DAY = 86_400_000_000
#: Dense cells (customer-days × categories) processed per chunk: bounds memory to a few tens of MB.
_CHUNK_CELLS = 4_000_000
#: Calendar bucket (days) of the date-matched base rate.
_BASE_BUCKET_DAYS = 7
#: Pinned complements get a lift just above the source's best other complement, this factor apart.
_PIN_STEP = 1.05
_ORIGINS = ("learned", "override")


# ------------------------------------------------------------------------------- overrides
@dataclass(frozen=True)
class CategoryOverride:
    """A merchandiser's correction of one source category's complements."""

    pin: tuple[str, ...] = ()
    add: tuple[tuple[str, float], ...] = ()
    remove: tuple[str, ...] = ()
    names: tuple[str, ...] = field(default=(), compare=False)

    def categories(self) -> list[tuple[str, str]]:
        """Every category named, with where (``pin``/``add``/``remove``), for validation."""
        return (
            [(c, "pin") for c in self.pin]
            + [(c, "add") for c, _ in self.add]
            + [(c, "remove") for c in self.remove]
        )


def _str_list(value: Any, origin: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{origin}: '{where}' must be a list of category names, got {value!r}")
    return tuple(value)


def load_overrides(source: str | Path | Mapping[str, Any] | None) -> tuple[dict[str, CategoryOverride], str]:
    """Parse an override file (or an already-loaded mapping) into ``{source category: CategoryOverride}``.

    The format, per source category::

        trousers:
          pin: [belts]          # always first, in this order
          add: {socks: 1.5}     # add (or re-weight) with this lift
          remove: [jeans]       # never suggest

    Returns the overrides and a label for messages (the file path, or ``"overrides dict"``).
    Structural mistakes raise ``ConfigError`` naming the file and the field; category names are
    checked against the catalogue at ``fit`` time.
    """
    if source is None:
        return {}, "no overrides"
    if isinstance(source, Mapping):
        raw: Any = source
        origin = "overrides dict"
    else:
        path = Path(source)
        origin = str(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(
                f"{origin}: cannot read the complements override file: {exc.strerror or exc}"
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
        if raw is None:
            raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{origin}: must map source category → {{pin, add, remove}}, got {type(raw).__name__}"
        )
    out: dict[str, CategoryOverride] = {}
    for src, spec in raw.items():
        if not isinstance(src, str):
            raise ConfigError(f"{origin}: source category names must be strings, got {src!r}")
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{origin}: '{src}' must map to {{pin, add, remove}}, got {spec!r}")
        unknown = sorted(set(spec) - {"pin", "add", "remove"})
        if unknown:
            raise ConfigError(
                f"{origin}: '{src}.{unknown[0]}' is not a known key (allowed: pin, add, remove)"
            )
        pin = _str_list(spec.get("pin"), origin, f"{src}.pin")
        remove = _str_list(spec.get("remove"), origin, f"{src}.remove")
        add_raw = spec.get("add") or {}
        if not isinstance(add_raw, Mapping):
            raise ConfigError(f"{origin}: '{src}.add' must map category → lift, got {add_raw!r}")
        add: list[tuple[str, float]] = []
        for tgt, lift in add_raw.items():
            ok = (
                isinstance(lift, (int, float))
                and not isinstance(lift, bool)
                and math.isfinite(lift)
                and lift > 0
            )
            if not isinstance(tgt, str) or not ok:
                raise ConfigError(
                    f"{origin}: '{src}.add.{tgt}' must be a positive number (the lift), got {lift!r}"
                )
            add.append((tgt, float(lift)))
        if src in set(pin) | set(remove) | {t for t, _ in add}:
            raise ConfigError(f"{origin}: '{src}' lists itself; a category is not its own complement")
        clash = (set(pin) | {t for t, _ in add}) & set(remove)
        if clash:
            raise ConfigError(f"{origin}: '{src}' both adds/pins and removes {sorted(clash)[0]!r}")
        if len(set(pin)) != len(pin):
            raise ConfigError(f"{origin}: '{src}.pin' lists a category twice")
        out[src] = CategoryOverride(pin=pin, add=tuple(add), remove=remove)
    return out, origin


# ------------------------------------------------------------------------------ the counting
@dataclass(frozen=True)
class SequenceCounts:
    """What ``sequence_counts`` measures, per source ``A`` (rows) and target ``B`` (columns).

    ``trig[A]`` eligible A trigger days; ``hits[A, B]`` of them followed by B within the window;
    ``hits_before[A, B]`` preceded by B within the window; ``support[A, B]`` distinct customers with
    at least one hit; ``base[A, B]`` the date-matched base rate of B over A's trigger dates.
    """

    trig: np.ndarray
    hits: np.ndarray
    hits_before: np.ndarray
    support: np.ndarray
    base: np.ndarray

    @classmethod
    def empty(cls, n: int) -> SequenceCounts:
        z = np.zeros((n, n))
        return cls(np.zeros(n), z, z.copy(), z.copy(), z.copy())


def _chunk_bounds(day_cust: np.ndarray, step: int) -> list[int]:
    """Split the customer-day timeline into chunks of about ``step`` rows at customer boundaries."""
    n_days = len(day_cust)
    starts = np.flatnonzero(np.r_[True, day_cust[1:] != day_cust[:-1]])
    bounds = [0]
    while bounds[-1] < n_days:
        target = bounds[-1] + step
        if target >= n_days:
            bounds.append(n_days)
            break
        nb = int(starts[np.searchsorted(starts, target, "right") - 1])
        if nb <= bounds[-1]:  # one customer longer than a chunk: take the whole customer
            j = np.searchsorted(starts, bounds[-1], "right")
            nb = int(starts[j]) if j < len(starts) else n_days
        bounds.append(nb)
    return bounds


def _coverage(ranges: tuple[np.ndarray, np.ndarray, np.ndarray], r0: int, r1: int, n: int) -> np.ndarray:
    """Dense ``(r1 - r0) × n``: 1 where customer-day row ``r`` lies in a range ``[lo, hi)`` of target ``g``.

    ``ranges`` are sorted by ``lo``; ranges of one target never overlap, so a difference array and a
    cumulative sum give exactly 0/1.
    """
    lo, hi, g = ranges
    m = r1 - r0
    s, e = np.searchsorted(lo, r0, "left"), np.searchsorted(lo, r1, "left")
    size = (m + 1) * n
    diff = np.bincount((lo[s:e] - r0) * n + g[s:e], minlength=size)
    diff -= np.bincount((hi[s:e] - r0) * n + g[s:e], minlength=size)
    return np.cumsum(diff.reshape(m + 1, n)[:m], axis=0, dtype=np.float32)


def sequence_counts(
    cust: np.ndarray,
    cat: np.ndarray,
    day: np.ndarray,
    n_cat: int,
    *,
    window: float,
    same_order: bool,
    first_day: int,
    last_day: int,
) -> SequenceCounts:
    """Count "B within ``window`` days after / before A" over unique ``(customer, category, day)`` rows.

    Parameters
    ----------
    cust, cat, day
        int64 arrays of unique rows sorted by ``(cust, day, cat)``; ``day`` in whole days.
    n_cat
        Number of categories (``cat`` values are ``0..n_cat-1``).
    window
        Days after (before) a trigger day that count.
    same_order
        Whether a B on the trigger day itself counts as "after" (it never counts as "before").
    first_day, last_day
        The observed period.  Only trigger days with both windows inside it are eligible, so
        triggers near the edges are not undercounted.
    """
    n = n_cat
    elig_lo, elig_hi = math.ceil(first_day + window), math.floor(last_day - window)
    if len(cust) == 0 or elig_hi < elig_lo:
        return SequenceCounts.empty(n)
    new_day = np.r_[True, (cust[1:] != cust[:-1]) | (day[1:] != day[:-1])]
    day_of_row = np.cumsum(new_day) - 1
    day_c, day_d = cust[new_day], day[new_day]
    span = last_day - first_day + 2
    key = day_c * span + (day_d - first_day)
    elig_day = (day_d >= elig_lo) & (day_d <= elig_hi)
    elig_row = elig_day[day_of_row]

    # every purchase of B, in (customer, B, day) order, with the previous / next day of the same B
    o = np.lexsort((day, cat, cust))
    bc, bg, bd = cust[o], cat[o], day[o]
    same = (bc[1:] == bc[:-1]) & (bg[1:] == bg[:-1])
    far = int(4 * window) + span + 1
    prev = np.where(np.r_[False, same], np.r_[0, bd[:-1]], first_day - far)
    nxt = np.where(np.r_[same, False], np.r_[bd[1:], 0], last_day + far)
    w_lo = np.ceil(bd - window).astype(np.int64)
    if same_order:  # B is the first purchase of B at or after day d  ⇔  prev < d ≤ b
        after = (np.maximum(prev + 1, w_lo), bd)
    else:  # B is the first purchase of B strictly after day d  ⇔  prev ≤ d < b
        after = (np.maximum(prev, w_lo), bd - 1)
    before = (bd + 1, np.minimum(nxt, np.floor(bd + window).astype(np.int64)))  # last B strictly before d

    def to_rows(lo_day: np.ndarray, hi_day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo_day, hi_day = np.maximum(lo_day, elig_lo), np.minimum(hi_day, elig_hi)
        ok = hi_day >= lo_day
        off = bc[ok] * span - first_day
        lo = np.searchsorted(key, off + lo_day[ok], "left")
        hi = np.searchsorted(key, off + hi_day[ok], "right")
        keep = hi > lo
        lo, hi, g = lo[keep], hi[keep], bg[ok][keep]
        order = np.argsort(lo, kind="stable")
        return lo[order], hi[order], g[order]

    ranges_after, ranges_before = to_rows(*after), to_rows(*before)
    n_weeks = (last_day - first_day) // _BASE_BUCKET_DAYS + 1
    week_of_row = (day - first_day) // _BASE_BUCKET_DAYS
    trig = np.bincount(cat[elig_row], minlength=n).astype(np.float64)
    trig_week = np.bincount(cat[elig_row] * n_weeks + week_of_row[elig_row], minlength=n * n_weeks)
    trig_week = trig_week.reshape(n, n_weeks).astype(np.float64)
    hits, hits_b, support = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    week_hits, week_days = np.zeros((n_weeks, n)), np.zeros(n_weeks)

    bounds = _chunk_bounds(day_c, max(1, _CHUNK_CELLS // n))
    for r0, r1 in itertools.pairwise(bounds):
        m = r1 - r0
        rs, re_ = np.searchsorted(day_of_row, [r0, r1], "left")
        sel = np.flatnonzero(elig_row[rs:re_]) + rs
        t_day, t_cat, t_cust = day_of_row[sel] - r0, cat[sel], cust[sel]
        ones = np.ones(len(sel), dtype=np.float32)
        incidence = sp.csr_matrix((ones, (t_cat, t_day)), shape=(n, m))
        cov_after = _coverage(ranges_after, r0, r1, n)
        hits += incidence @ cov_after
        hits_b += incidence @ _coverage(ranges_before, r0, r1, n)
        groups, inv = np.unique(t_cust * n + t_cat, return_inverse=True)
        per_cust = sp.csr_matrix((ones, (inv, t_day)), shape=(len(groups), m)) @ cov_after
        to_cat = sp.csr_matrix(
            (np.ones(len(groups), np.float32), (groups % n, np.arange(len(groups)))), shape=(n, len(groups))
        )
        support += to_cat @ (per_cust > 0).astype(np.float32)
        ed = np.flatnonzero(elig_day[r0:r1])
        wk = (day_d[r0 + ed] - first_day) // _BASE_BUCKET_DAYS
        weeks = sp.csr_matrix((np.ones(len(ed), np.float32), (wk, ed)), shape=(n_weeks, m))
        week_hits += weeks @ cov_after
        week_days += np.bincount(wk, minlength=n_weeks)

    week_rate = week_hits / np.maximum(week_days, 1.0)[:, None]
    base = np.divide(trig_week @ week_rate, trig[:, None], out=np.zeros((n, n)), where=trig[:, None] > 0)
    return SequenceCounts(trig, hits, hits_b, support, base)


# ---------------------------------------------------------------------------------- the model
class CategoryComplements(Recommender):
    """Directional category complements learned from purchase sequences, plus merchandiser overrides.

    Definitions (per ordered pair ``A → B``, ``A ≠ B``; purchases reduced to customer-days):

    * a *trigger* is a day on which a customer bought ``A`` and whose ``window_days`` before and after
      both lie inside the training period;
    * a *hit* is a trigger followed by a ``B`` purchase within ``window_days`` — on a strictly later
      day, or also on the same day with ``same_order=True`` (day granularity: "same order" means
      same day);
    * ``support`` = number of distinct **customers** with at least one hit (so one heavy shopper
      cannot make a pair); pairs below ``min_support`` are not learned;
    * ``confidence`` = hits / triggers = P(B within window | A);
    * ``base_rate`` = max(date-matched P(B within window after any purchase that week),
      shrunk P(B within window *before* A));
    * ``lift`` = ((hits + shrinkage·base) / (triggers + shrinkage)) / base — 1 for small counts.

    Learned edges need ``lift ≥ min_lift`` (and > 1) and ``support ≥ min_support``; the best
    ``max_per_category`` per source are kept, then ``overrides`` are applied (they always win).

    ``recommend`` looks at each customer's purchases in the last ``window_days`` before the reference
    time (the last purchase seen, advanced by ``partial_fit``), takes the most recent purchase of each
    category, and proposes the bestsellers of its complement categories scored ``lift × recency ×
    popularity`` (recency halves every ``window_days / 2``; popularity is the item's decayed sales
    relative to its category's best seller).  A complement the customer already bought after the
    trigger is not suggested again from that trigger.  ``recommend_with_sources`` says which purchase
    caused each suggestion.

    Shops without categories cannot use this model: ``fit`` raises ``ModelFitError`` (callers catch it).
    On data too small for ``min_support`` the graph is empty (logged) and recommendations are empty.

    Parameters
    ----------
    window_days
        How soon after A a purchase of B counts, and how far back ``recommend`` looks.
    min_support
        Minimum number of distinct customers with a hit for a learned edge.
    shrinkage
        Pseudo-triggers pulling confidence toward the base rate (lift toward 1).
    max_per_category
        Learned complements kept per source category (overrides come on top).
    same_order
        Count B bought the same day as A (basket co-purchase; useful for groceries).
    overrides
        Path of an override YAML or an equivalent dict; ``None`` for none.
    min_lift
        Smallest shrunk lift a learned edge needs.  Lifts of 1.0–1.1 on thousands of triggers are
        sampling noise around "no effect"; a merchandiser should not have to read them.
    """

    reason = "complements_category"

    def __init__(
        self,
        *,
        window_days: float = 30.0,
        min_support: int = 20,
        shrinkage: float = 50.0,
        max_per_category: int = 10,
        same_order: bool = False,
        overrides: str | Path | Mapping[str, Any] | None = None,
        min_lift: float = 1.1,
    ) -> None:
        self.window_days = window_days
        self.min_support = min_support
        self.shrinkage = shrinkage
        self.max_per_category = max_per_category
        self.same_order = same_order
        self.overrides = overrides
        self.min_lift = min_lift

    def _validate_params(self) -> None:
        def number(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

        def integer(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        w = self.window_days
        check_param(self, "window_days", w, "a float in (0, inf)", number(w) and math.isfinite(w) and w > 0)
        check_param(
            self,
            "min_support",
            self.min_support,
            "an int in [1, inf)",
            integer(self.min_support) and self.min_support >= 1,
        )
        check_param(
            self,
            "shrinkage",
            self.shrinkage,
            "a float in [0, inf)",
            number(self.shrinkage) and math.isfinite(self.shrinkage) and self.shrinkage >= 0,
        )
        check_param(
            self,
            "max_per_category",
            self.max_per_category,
            "an int in [1, inf)",
            integer(self.max_per_category) and self.max_per_category >= 1,
        )
        check_param(self, "same_order", self.same_order, "a bool", isinstance(self.same_order, bool))
        check_param(
            self,
            "min_lift",
            self.min_lift,
            "a float in [1, inf)",
            number(self.min_lift) and math.isfinite(self.min_lift) and self.min_lift >= 1,
        )
        check_param(
            self,
            "overrides",
            self.overrides,
            "a path, a dict or None",
            self.overrides is None or isinstance(self.overrides, (str, Path, Mapping)),
        )

    # ------------------------------------------------------------------- fit
    def _fit(self, data: Dataset) -> None:
        if not data.has_categories:
            raise ModelFitError(
                f"{type(self).__name__}: the item catalogue of {data.source!r} has no categories, so no "
                "category-complement graph can be learned; fit without this generator"
            )
        overrides, origin = load_overrides(self.overrides)  # structural errors before the heavy work
        purchases = data.purchases
        if purchases.height == 0:
            raise ModelFitError(
                f"{type(self).__name__}: {data.source!r} has no purchases to learn complements from"
            )
        self.item_ids_ = IdMap.from_values(data.items["item_id"].to_list())
        self.item_cat_, self.categories_ = group_index(data.items, self.item_ids_, "category")
        self.customer_ids_ = IdMap.from_values(purchases["customer_id"].unique().to_list())
        self.reference_time_: datetime = purchases["ts"].max()  # type: ignore[assignment]
        events = encode(purchases, self.customer_ids_, self.item_ids_, self.item_cat_)
        self._learn(events.filter(pl.col("g") >= 0))
        self._apply_overrides(overrides, origin)
        self.item_pop_ = decayed_item_counts(
            events, len(self.item_ids_), self.reference_time_, ITEM_HALF_LIFE_DAYS
        )
        self.bought_ = binary_matrix(events, (len(self.customer_ids_), len(self.item_ids_)))
        self._set_history(events)
        self._derive()
        if len(self.edge_src_) == 0:
            log.warning(
                "%s learned no complements (window_days=%s, min_support=%s): recommendations will be empty",
                type(self).__name__,
                self.window_days,
                self.min_support,
            )

    def _learn(self, events: pl.DataFrame) -> None:
        n = len(self.categories_)
        if events.height == 0:
            counts = SequenceCounts.empty(n)
        else:
            days = events.select("c", "g", d=pl.col("t") // _US_PER_DAY).unique().sort("c", "d", "g")
            counts = sequence_counts(
                days["c"].to_numpy().astype(np.int64),
                days["g"].to_numpy().astype(np.int64),
                days["d"].to_numpy().astype(np.int64),
                n,
                window=float(self.window_days),
                same_order=bool(self.same_order),
                first_day=int(days["d"].min()),  # type: ignore[arg-type]
                last_day=int(days["d"].max()),  # type: ignore[arg-type]
            )
        self.n_triggers_ = counts.trig
        s = float(self.shrinkage)
        trig = counts.trig[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            before = (counts.hits_before + s * counts.base) / (trig + s)
            base = np.maximum(counts.base, np.nan_to_num(before))
            lift = ((counts.hits + s * base) / (trig + s)) / base
            confidence = counts.hits / trig
        ok = (
            (trig > 0)
            & (base > 0)
            & (counts.support >= self.min_support)
            & (lift > 1.0)
            & (lift >= self.min_lift)
        )
        np.fill_diagonal(ok, False)
        src, dst = np.nonzero(ok)
        order = np.lexsort((dst, -lift[src, dst], src))
        src, dst = src[order], dst[order]
        keep = rank_within(src) < self.max_per_category
        src, dst = src[keep], dst[keep]
        self.edge_src_ = src.astype(np.int64)
        self.edge_dst_ = dst.astype(np.int64)
        self.edge_support_ = counts.support[src, dst].astype(np.int64)
        self.edge_confidence_ = confidence[src, dst].astype(np.float64)
        self.edge_base_ = base[src, dst].astype(np.float64)
        self.edge_lift_ = lift[src, dst].astype(np.float64)
        self.edge_origin_ = np.zeros(len(src), dtype=np.int8)
        self.edge_pinned_ = np.zeros(len(src), dtype=bool)

    def _apply_overrides(self, overrides: dict[str, CategoryOverride], origin: str) -> None:
        if not overrides:
            return
        index = {str(c): k for k, c in enumerate(self.categories_)}
        for src, ov in overrides.items():
            for name, where in [(src, "source")] + [(c, f"{src}.{w}") for c, w in ov.categories()]:
                if name not in index:
                    close = difflib.get_close_matches(name, list(index), n=3) or sorted(index)[:3]
                    raise ConfigError(
                        f"{origin}: unknown category {name!r} ({where}); it is not in the catalogue "
                        f"({len(index)} categories; closest: {', '.join(map(repr, close))})"
                    )
        edges: dict[tuple[int, int], list[Any]] = {
            (int(a), int(b)): [int(s), float(c), float(bs), float(li), 0, False]
            for a, b, s, c, bs, li in zip(
                self.edge_src_,
                self.edge_dst_,
                self.edge_support_,
                self.edge_confidence_,
                self.edge_base_,
                self.edge_lift_,
                strict=True,
            )
        }
        nan = float("nan")
        for src, ov in overrides.items():
            a = index[src]
            for tgt in ov.remove:
                edges.pop((a, index[tgt]), None)
            for tgt, value in ov.add:
                e = edges.setdefault((a, index[tgt]), [0, nan, nan, value, 1, False])
                e[3], e[4] = value, 1
            pins = [index[t] for t in ov.pin]
            others = [e[3] for (s_, b), e in edges.items() if s_ == a and b not in pins]
            floor = max(others, default=1.0)
            for b in reversed(pins):  # last pin just above the best other, each earlier pin above it
                e = edges.setdefault((a, b), [0, nan, nan, 0.0, 1, True])
                e[3], e[4], e[5] = max(e[3], floor * _PIN_STEP), 1, True
                floor = e[3]
        keys = sorted(edges, key=lambda k: (k[0], -edges[k][3], k[1]))
        cols = list(zip(*[edges[k] for k in keys], strict=True)) if keys else [[]] * 6
        self.edge_src_ = np.array([k[0] for k in keys], dtype=np.int64)
        self.edge_dst_ = np.array([k[1] for k in keys], dtype=np.int64)
        self.edge_support_ = np.array(cols[0], dtype=np.int64)
        self.edge_confidence_ = np.array(cols[1], dtype=np.float64)
        self.edge_base_ = np.array(cols[2], dtype=np.float64)
        self.edge_lift_ = np.array(cols[3], dtype=np.float64)
        self.edge_origin_ = np.array(cols[4], dtype=np.int8)
        self.edge_pinned_ = np.array(cols[5], dtype=bool)

    def _derive(self) -> None:
        n = len(self.categories_)
        self.edge_indptr_ = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.edge_src_, minlength=n), out=self.edge_indptr_[1:])
        self.ranked_ = ranked_group_items(self.item_cat_, self.item_pop_, n)
        self.category_index_ = {str(c): k for k, c in enumerate(self.categories_)}

    def _set_history(self, events: pl.DataFrame) -> None:
        """Keep the categorised purchases inside the look-back window of the reference time, sorted by
        (customer, ts) so a customer's history is one contiguous slice."""
        cutoff = to_us(self.reference_time_) - int(self.window_days * _US_PER_DAY)
        recent = events.filter((pl.col("g") >= 0) & (pl.col("t") >= cutoff)).sort("c", "t", "g", "i")
        self.hist_cust_, self.hist_item_, self.hist_cat_, self.hist_ts_ = (
            recent[k].to_numpy().astype(np.int64) for k in ("c", "i", "g", "t")
        )

    def _history(self) -> pl.DataFrame:
        return pl.DataFrame(
            {"c": self.hist_cust_, "i": self.hist_item_, "t": self.hist_ts_, "g": self.hist_cat_},
            schema={"c": pl.Int64, "i": pl.Int64, "t": pl.Int64, "g": pl.Int64},
        )

    # ----------------------------------------------------------- the graph
    def graph_frame(self) -> pl.DataFrame:
        """All edges: ``(source, target, support, confidence, base_rate, lift, origin, rank, pinned)``.

        ``origin`` is ``"learned"`` or ``"override"``; ``rank`` is 1-based within the source (pins
        first, then by lift).  ``confidence``/``base_rate`` are null for edges only an override made.
        """
        self._check_fitted()
        names = self.categories_.astype(str)
        rank = rank_within(self.edge_src_) + 1
        return pl.DataFrame(
            {
                "source": pl.Series(names[self.edge_src_] if len(self.edge_src_) else [], dtype=pl.String),
                "target": pl.Series(names[self.edge_dst_] if len(self.edge_dst_) else [], dtype=pl.String),
                "support": pl.Series(self.edge_support_, dtype=pl.Int64),
                "confidence": pl.Series(self.edge_confidence_, dtype=pl.Float64, nan_to_null=True),
                "base_rate": pl.Series(self.edge_base_, dtype=pl.Float64, nan_to_null=True),
                "lift": pl.Series(self.edge_lift_, dtype=pl.Float64),
                "origin": pl.Series(
                    np.array(_ORIGINS, dtype=object)[self.edge_origin_].astype(str)
                    if len(self.edge_origin_)
                    else [],
                    dtype=pl.String,
                ),
                "rank": pl.Series(rank, dtype=pl.Int32),
                "pinned": pl.Series(self.edge_pinned_, dtype=pl.Boolean),
            }
        )

    def complements(self, categories: str | Sequence[str], n: int = 5) -> pl.DataFrame:
        """Top ``n`` complement categories of each given category (in the order given).

        Returns ``(source, rank, target, lift, support, confidence, base_rate, origin)``; a category
        with no complements contributes no rows; a category not in the catalogue raises
        ``UnknownIdError``.
        """
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        names = [categories] if isinstance(categories, str) else list(categories)
        missing = [c for c in names if c not in self.category_index_]
        if missing:
            raise UnknownIdError(f"{type(self).__name__}: unknown category {missing[0]!r}")
        graph = self.graph_frame().filter(pl.col("rank") <= n)
        order = pl.DataFrame(
            {"source": names, "_o": list(range(len(names)))}, schema={"source": pl.String, "_o": pl.Int64}
        )
        return (
            order.join(graph, on="source", how="inner")
            .sort("_o", "rank")
            .select("source", "rank", "target", "lift", "support", "confidence", "base_rate", "origin")
        )

    def export(self, path: str | Path, n: int = 10) -> Path:
        """Write the top ``n`` complements per category as CSV (``.csv``) or Markdown (``.md``).

        For merchandisers reviewing the graph before writing overrides.  Written atomically (a temp
        file beside ``path``, then ``os.replace``).
        """
        self._check_fitted()
        path = Path(path)
        suffix = path.suffix.lower()
        check_param(
            self,
            "path",
            str(path),
            "a file name ending in .csv or .md",
            suffix in (".csv", ".md", ".markdown"),
        )
        frame = (
            self.graph_frame()
            .filter(pl.col("rank") <= n)
            .select(
                "source", "rank", "target", "support", "confidence", "base_rate", "lift", "origin", "pinned"
            )
        )
        text = self._csv(frame) if suffix == ".csv" else self._markdown(frame, n)
        return atomic_write_text(path, text)  # a report meant to be shared: 0o644

    @staticmethod
    def _csv(frame: pl.DataFrame) -> str:
        return frame.with_columns(pl.col("confidence", "base_rate", "lift").round(4)).write_csv()

    def _markdown(self, frame: pl.DataFrame, n: int) -> str:
        def fmt(v: float | None, digits: int) -> str:
            return "–" if v is None else f"{v:.{digits}f}"

        lines = [
            "# Category complements",
            "",
            f"Top {n} complements per category: B is bought within {self.window_days:g} days "
            f"{'(same day included) ' if self.same_order else ''}after A.  Support = customers who did; "
            f"confidence = P(B within the window | A); lift = confidence ÷ base rate (shrunk toward 1, "
            f"shrinkage {self.shrinkage:g}); learned edges need support ≥ {self.min_support} and "
            f"lift ≥ {self.min_lift:g}.",
            "",
            "| Source | # | Complement | Support | Confidence | Base rate | Lift | Origin |",
            "|---|---:|---|---:|---:|---:|---:|---|",
        ]
        for r in frame.iter_rows(named=True):
            origin = f"{r['origin']}, pinned" if r["pinned"] else r["origin"]
            lines.append(
                f"| {r['source']} | {r['rank']} | {r['target']} | {r['support']} | "
                f"{fmt(r['confidence'], 3)} | {fmt(r['base_rate'], 3)} | {r['lift']:.2f} | {origin} |"
            )
        return "\n".join(lines) + "\n"

    # ----------------------------------------------------------------- query
    def _candidates(self, rows: np.ndarray, n: int, exclude_bought: bool) -> dict[str, np.ndarray]:
        """Top-``n`` suggestions with their sources for customer rows (-1 = unknown: none)."""
        pos = np.flatnonzero(rows >= 0)
        lo = np.searchsorted(self.hist_cust_, rows[pos], "left")
        hi = np.searchsorted(self.hist_cust_, rows[pos], "right")
        owner, ev = expand_ranges(lo, hi - lo)
        p = pos[owner]
        ref = to_us(self.reference_time_)
        recent = self.hist_ts_[ev] >= ref - int(self.window_days * _US_PER_DAY)
        p, ev = p[recent], ev[recent]
        # the most recent purchase of each (customer, category) is the trigger
        cat, ts = self.hist_cat_[ev], self.hist_ts_[ev]
        order = np.lexsort((self.hist_item_[ev], -ts, cat, p))
        p, ev = p[order], ev[order]
        first = rank_within(p * len(self.categories_) + self.hist_cat_[ev]) == 0
        t_pos, t_ev = p[first], ev[first]
        t_cat, t_ts = self.hist_cat_[t_ev], self.hist_ts_[t_ev]
        age_days = (ref - t_ts) / _US_PER_DAY
        recency = np.power(0.5, age_days / (self.window_days / 2.0))
        # complement edges of each trigger
        e_owner, e = expand_ranges(
            self.edge_indptr_[t_cat], self.edge_indptr_[t_cat + 1] - self.edge_indptr_[t_cat]
        )
        tgt = self.edge_dst_[e]
        weight = self.edge_lift_[e] * recency[e_owner]
        # a complement already bought on/after its trigger is fulfilled
        n_cat = len(self.categories_)
        last_key = t_pos * n_cat + t_cat  # sorted: t_pos then t_cat ascending
        want = t_pos[e_owner] * n_cat + tgt
        at = np.clip(np.searchsorted(last_key, want), 0, max(len(last_key) - 1, 0))
        if len(last_key):
            done = (last_key[at] == want) & (t_ts[at] >= t_ts[e_owner])
            e_owner, tgt, weight = e_owner[~done], tgt[~done], weight[~done]
        # one weight per (customer, target category): the strongest source
        order = np.lexsort((e_owner, -weight, tgt, t_pos[e_owner]))
        e_owner, tgt, weight = e_owner[order], tgt[order], weight[order]
        best = rank_within(t_pos[e_owner] * n_cat + tgt) == 0
        e_owner, tgt, weight = e_owner[best], tgt[best], weight[best]
        pair_pos = t_pos[e_owner]
        bought = bought_keys(self.bought_, rows) if exclude_bought else None
        owner2, item, score = group_candidates(pair_pos, tgt, weight, self.ranked_, self.item_cat_, n, bought)
        sel, rank = top_per_position(pair_pos[owner2], item, score, n)
        src = e_owner[owner2[sel]]
        return {
            "pos": pair_pos[owner2[sel]],
            "rank": rank,
            "item": item[sel],
            "score": score[sel],
            "source_cat": t_cat[src],
            "source_item": self.hist_item_[t_ev[src]],
            "source_ts": t_ts[src],
        }

    def _recommend(self, rows: np.ndarray, n: int, *, exclude_bought: bool) -> tuple[np.ndarray, np.ndarray]:
        c = self._candidates(rows, n, exclude_bought)
        return pack(len(rows), n, c["pos"], c["rank"], c["item"], c["score"])

    def recommend_with_sources(
        self,
        customer_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        exclude_bought: bool = False,
        on_unknown: OnUnknown = "raise",
    ) -> pl.DataFrame:
        """``recommend`` with provenance, one row per suggestion, for explanations.

        Returns ``(customer_id, rank, item_id, category, score, source_category, source_item_id,
        source_ts)``: "because you bought <source_item_id> on <source_ts>".  Ranks are 1-based; the
        items and scores equal ``recommend``'s; customers without suggestions have no rows.
        """
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        ids = np.array([customer_ids] if isinstance(customer_ids, str) else list(customer_ids), dtype=object)
        rows = self._customer_rows(ids)
        if (rows < 0).any() and on_unknown == "raise":
            bad = ids[rows < 0]
            raise UnknownIdError(
                f"{type(self).__name__}: {len(bad)} unknown customer id(s), e.g. {bad[0]!r}; "
                "pass on_unknown='empty' to get empty rows instead"
            )
        c, order = self._explained(rows, n, exclude_bought)
        cats = self.categories_.astype(str)
        return pl.DataFrame(
            {
                "customer_id": pl.Series(ids[c["pos"][order]].astype(str), dtype=pl.String),
                "rank": pl.Series(c["rank"][order] + 1, dtype=pl.Int32),
                "item_id": pl.Series(self.item_ids_.ids[c["item"][order]].astype(str), dtype=pl.String),
                "category": pl.Series(cats[self.item_cat_[c["item"][order]]], dtype=pl.String),
                "score": pl.Series(c["score"][order], dtype=pl.Float32),
                "source_category": pl.Series(cats[c["source_cat"][order]], dtype=pl.String),
                "source_item_id": pl.Series(
                    self.item_ids_.ids[c["source_item"][order]].astype(str), dtype=pl.String
                ),
                "source_ts": pl.Series(c["source_ts"][order], dtype=pl.Int64).cast(pl.Datetime("us")),
            }
        )

    def _explained(self, rows: np.ndarray, n: int, exclude_bought: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
        c = self._candidates(rows, n, exclude_bought)
        return c, np.lexsort((c["rank"], c["pos"]))

    def explain_arrays(
        self,
        customer_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        exclude_bought: bool = False,
        on_unknown: OnUnknown = "raise",
    ) -> Explained:
        """``recommend_with_sources`` as arrays (the per-request path)."""
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        _, rows = resolve_rows(self, customer_ids, on_unknown)
        c, order = self._explained(rows, n, exclude_bought)
        item_ids = self.item_ids_.ids
        return Explained(
            c["pos"][order], (c["rank"][order] + 1).astype(np.int32),
            item_ids[c["item"][order]].astype(str).astype(object), c["score"][order].astype(np.float32),
            item_ids[c["source_item"][order]].astype(str).astype(object), c["source_ts"][order].astype(np.int64),
        )

    # --------------------------------------------------------------- fold-in
    def partial_fit(self, interactions: pl.DataFrame) -> CategoryComplements:
        """Fold new purchases into customers' recent history (the graph and bestsellers stay as trained).

        Someone who just bought trousers gets belts immediately.  The reference time moves to the
        newest purchase seen, so older history ages and leaves the window.
        """
        self._check_fitted()
        purchases = purchases_only(interactions)
        if purchases.height == 0:
            return self
        self.customer_ids_ = self.customer_ids_.extend(purchases["customer_id"].to_list())
        newest: datetime = purchases["ts"].max()  # type: ignore[assignment]
        self.reference_time_ = max(self.reference_time_, newest)
        events = encode(purchases, self.customer_ids_, self.item_ids_, self.item_cat_)
        self._set_history(pl.concat([self._history(), events.select("c", "i", "t", "g")]))
        self.bought_ = merge_bought(
            self.bought_, binary_matrix(events, (len(self.customer_ids_), len(self.item_ids_)))
        )
        return self

    def forget(self, customer_ids: Sequence[str]) -> CategoryComplements:
        """Erase customers' history and purchase flags (the graph holds only aggregates and stays)."""
        self._check_fitted()
        rows = self.customer_ids_.index(list(customer_ids))
        rows = np.unique(rows[rows >= 0])
        keep_rows = np.setdiff1d(np.arange(len(self.customer_ids_)), rows)
        remap = np.full(len(self.customer_ids_), -1, dtype=np.int64)
        remap[keep_rows] = np.arange(len(keep_rows))
        self.customer_ids_ = IdMap(self.customer_ids_.ids[keep_rows])
        self.bought_ = remove_rows(self.bought_, rows)
        keep = remap[self.hist_cust_] >= 0
        self.hist_cust_ = remap[self.hist_cust_[keep]]
        self.hist_item_, self.hist_cat_, self.hist_ts_ = (
            self.hist_item_[keep],
            self.hist_cat_[keep],
            self.hist_ts_[keep],
        )
        return self

    # ----------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        b = self.bought_.tocsr()
        arrays = {
            "item_ids": self.item_ids_.to_numpy(),
            "customer_ids": self.customer_ids_.to_numpy(),
            "categories": self.categories_.astype(str)
            if len(self.categories_)
            else np.array([], dtype="<U1"),
            "item_cat": self.item_cat_,
            "item_pop": self.item_pop_,
            "n_triggers": self.n_triggers_,
            "edge_src": self.edge_src_,
            "edge_dst": self.edge_dst_,
            "edge_support": self.edge_support_,
            "edge_confidence": self.edge_confidence_,
            "edge_base": self.edge_base_,
            "edge_lift": self.edge_lift_,
            "edge_origin": self.edge_origin_,
            "edge_pinned": self.edge_pinned_,
            "hist_cust": self.hist_cust_,
            "hist_item": self.hist_item_,
            "hist_cat": self.hist_cat_,
            "hist_ts": self.hist_ts_,
            "bought_indptr": b.indptr,
            "bought_indices": b.indices,
        }
        return arrays, {"reference_time": self.reference_time_.isoformat()}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.item_ids_ = IdMap(arrays["item_ids"])
        self.customer_ids_ = IdMap(arrays["customer_ids"])
        self.categories_ = arrays["categories"].astype(object)
        self.item_cat_ = arrays["item_cat"].astype(np.int64)
        self.item_pop_ = arrays["item_pop"]
        self.n_triggers_ = arrays["n_triggers"]
        for name in ("src", "dst", "support", "confidence", "base", "lift", "origin", "pinned"):
            setattr(self, f"edge_{name}_", arrays[f"edge_{name}"])
        for name in ("cust", "item", "cat", "ts"):
            setattr(self, f"hist_{name}_", arrays[f"hist_{name}"].astype(np.int64))
        ind = arrays["bought_indices"]
        self.bought_ = csr_of(
            arrays["bought_indptr"],
            ind,
            np.ones(len(ind), np.float32),
            (len(self.customer_ids_), len(self.item_ids_)),
        )
        self.reference_time_ = datetime.fromisoformat(meta["reference_time"])
        self._derive()

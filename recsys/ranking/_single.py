"""Stage one and two for *one* customer in numpy and plain Python: the per-request path.

Why a second implementation: the batch path (``collect_candidates`` → ``widen`` → ``build_features``)
is a chain of polars joins and group-bys that is cheap per customer over thousands of customers but
costs ~15 ms for one, almost all of it fixed per-operation overhead.  A website request has one
customer, ~200 candidates and a history of tens to a few thousand lines: dictionaries and small
arrays do that in a few milliseconds.  The two paths must agree feature for feature (the ranker was
trained on the batch features); ``tests/ranking/test_single_path.py`` compares them on every column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from recsys.models.base import PAD_ID
from recsys.ranking._candidates import SOURCED_REASONS, _known_mask, _params
from recsys.ranking._cascade import cascade_scores
from recsys.ranking._features import CUSTOMER_FEATURES, ITEM_FEATURES

if TYPE_CHECKING:
    from recsys.ranking._features import ItemStats
    from recsys.ranking.hybrid import HybridRecommender

__all__ = ["ItemLookup", "SingleCandidates", "rank_one", "rrf_from_ranks", "single_candidates", "single_features"]

_DAY_US = 86_400 * 1_000_000
_EPOCH = datetime(1970, 1, 1)
_NAT = np.iinfo(np.int64).min


def _us(ts: datetime) -> int:
    """Microseconds since the epoch of a naive datetime (the schema's ``Datetime(us)``)."""
    return (ts.replace(tzinfo=None) - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class ItemLookup:
    """``ItemStats`` as dictionaries and arrays, built once per bundle: item row → features."""

    row: dict[str, int]
    category: list[str]
    features: np.ndarray  # (items, len(ITEM_FEATURES)) float32, NaN = missing
    cat_share: dict[str, float]

    @classmethod
    def of(cls, stats: ItemStats) -> ItemLookup:
        """Build the lookup from fitted ``ItemStats`` (item features as float32, NaN for missing)."""
        items = stats.items_
        ids = items["item_id"].to_list()
        feats = items.select(
            [pl.col(c).cast(pl.Float32).fill_nan(None) for c in ITEM_FEATURES]
        ).to_numpy(order="c").astype(np.float32)
        shares = stats.categories_
        return cls(
            row={i: r for r, i in enumerate(ids)},
            category=[c if c is not None else "" for c in items["category"].to_list()],
            features=feats,
            cat_share=dict(zip(shares["category"].to_list(), shares["cat_share"].to_list(), strict=True)),
        )

    def category_of(self, item_id: str) -> str:
        """The item's category, ``""`` when unknown or uncategorised."""
        r = self.row.get(item_id)
        return self.category[r] if r is not None else ""


@dataclass
class SingleCandidates:
    """The widened candidates of one customer (what ``widen`` gives for one customer, as arrays)."""

    items: list[str]
    gen_scores: np.ndarray  # (n, gens) float32, NaN = not proposed by that generator
    gen_ranks: np.ndarray  # (n, gens) float32, NaN = not proposed
    n_gens: np.ndarray  # (n,) float32
    reason_gen: list[int]
    reason: list[str | None]  # the reason generator's per-candidate reason (None: its class's)
    source_item: list[str | None]
    source_ts: list[int | None]  # µs since epoch


def _rows_of_generator(gen: Any, cid: str, k: int, exclude_bought: bool) -> list[tuple[Any, ...]] | None:
    """(item_id, score, rank, source_item_id, source_ts_us, reason) rows of one generator, or None.

    Generators that explain themselves do it through ``explain_arrays`` here (the same computation as
    the ``recommend_with_sources`` frame the batch path reads); the others through ``recommend``.
    """
    if not gen.serves_unknown and not _known_mask(gen, np.array([cid], dtype=object))[0]:
        return None
    explain = getattr(gen, "explain_arrays", None)
    if explain is not None:
        if exclude_bought and "exclude_bought" not in _params(explain):
            return None  # a generator that cannot leave bought items out has nothing new to offer
        e = explain([cid], k, on_unknown="empty", **({"exclude_bought": True} if exclude_bought else {}))
        why = getattr(e, "reason", None)  # per-entry reasons (TIFU-KNN), else the class's
        reasons = why.tolist() if why is not None else [None] * len(e.item_id)
        return [
            (i, s, int(r), si, int(t) if t != _NAT else None, why)
            for i, s, r, si, t, why in zip(e.item_id.tolist(), e.score, e.rank.tolist(), e.source_item_id.tolist(),
                                           e.source_us.tolist(), reasons, strict=True)
            if np.isfinite(s)
        ]
    ids, scores = gen.recommend(np.array([cid], dtype=object), k, on_unknown="empty", exclude_bought=exclude_bought)
    s32 = np.asarray(scores[0], dtype=np.float32)
    return [
        (str(i), s, r + 1, None, None, None)
        for r, (i, s) in enumerate(zip(ids[0], s32, strict=True))
        if i != PAD_ID and np.isfinite(s)
    ]


def single_candidates(hybrid: HybridRecommender, cid: str, *, exclude_bought: bool = False) -> SingleCandidates:
    """Union of every generator's candidates for one customer, one entry per item (as ``widen``)."""
    names = list(hybrid.generators)
    per_item: dict[str, list[tuple[int, int, Any, Any, Any]]] = {}
    score: dict[tuple[str, int], float] = {}
    rank: dict[tuple[str, int], int] = {}
    counts = hybrid.new_candidates if exclude_bought else hybrid.candidates
    for g, name in enumerate(names):
        k = counts.get(name, 0)
        if k <= 0:
            continue
        rows = _rows_of_generator(hybrid.generators[name], cid, k, exclude_bought)
        for item, s, r, src, ts, why in rows or ():
            per_item.setdefault(item, []).append((r, g, src, ts, why))
            key = (item, g)
            if key not in score or s > score[key]:
                score[key] = float(s)
            if key not in rank or r < rank[key]:
                rank[key] = r
    items = list(per_item)
    n, m = len(items), len(names)
    gen_scores = np.full((n, m), np.nan, dtype=np.float32)
    gen_ranks = np.full((n, m), np.nan, dtype=np.float32)
    pos = {item: j for j, item in enumerate(items)}
    for (item, g), s in score.items():
        gen_scores[pos[item], g] = s
    for (item, g), r in rank.items():
        gen_ranks[pos[item], g] = r
    reason_gen, reason, src_items, src_ts, n_gens = [], [], [], [], np.zeros(n, dtype=np.float32)
    for j, item in enumerate(items):
        entries = sorted(per_item[item], key=lambda e: (e[0], e[1]))
        reason_gen.append(entries[0][1])
        reason.append(entries[0][4])
        src_items.append(next((e[2] for e in entries if e[2] is not None), None))
        src_ts.append(next((e[3] for e in entries if e[3] is not None), None))
        n_gens[j] = len({e[1] for e in entries})
    return SingleCandidates(items, gen_scores, gen_ranks, n_gens, reason_gen, reason, src_items, src_ts)


def single_features(
    cand: SingleCandidates, history: pl.DataFrame, lookup: ItemLookup, now: datetime
) -> np.ndarray:
    """Feature matrix in ``feature_names`` order: generator scores/ranks, ``n_gens``, customer and item
    features — the same values ``build_features`` + ``to_matrix`` give for this customer."""
    now_us = _us(now)
    h_items = history["item_id"].to_list()
    h_ts = history["ts"].cast(pl.Int64).to_numpy()
    h_price = history["price"].cast(pl.Float64).to_numpy()
    h_order = history["order_id"].to_list()
    ci: dict[str, list[Any]] = {}  # item → [count, last]
    cc: dict[str, list[Any]] = {}  # category → [count, last, price sum, priced lines]
    orders: set[str] = set()
    last_any = _NAT
    lines = 0
    for item, ts, price, order in zip(h_items, h_ts.tolist(), h_price.tolist(), h_order, strict=True):
        if ts >= now_us:
            continue
        lines += 1
        e = ci.get(item)
        if e is None:
            ci[item] = [1, ts]
        else:
            e[0] += 1
            if ts > e[1]:
                e[1] = ts
        cat = lookup.category_of(item)
        c = cc.get(cat)
        if c is None:
            c = cc[cat] = [0, _NAT, 0.0, 0]
        c[0] += 1
        if ts > c[1]:
            c[1] = ts
        if price == price:  # not NaN / null
            c[2] += price
            c[3] += 1
        orders.add(order if order is not None else _date_string(ts))
        if ts > last_any:
            last_any = ts

    n = len(cand.items)
    rows = np.array([lookup.row.get(i, -1) for i in cand.items], dtype=np.int64)
    item_f = np.full((n, len(ITEM_FEATURES)), np.nan, dtype=np.float32)
    known = rows >= 0
    item_f[known] = lookup.features[rows[known]]
    cats = [lookup.category[r] if r >= 0 else "" for r in rows.tolist()]

    f32 = np.float32
    nan = np.nan
    ci_count = np.array([ci[i][0] if i in ci else 0 for i in cand.items], dtype=f32)
    ci_last = np.array([ci[i][1] if i in ci else _NAT for i in cand.items], dtype=np.int64)
    cc_count = np.array([cc[c][0] if c in cc else 0 for c in cats], dtype=f32)
    cc_last = np.array([cc[c][1] if c in cc else _NAT for c in cats], dtype=np.int64)
    cc_price = np.array(
        [cc[c][2] / cc[c][3] if c in cc and cc[c][3] else nan for c in cats], dtype=np.float64
    ).astype(f32)
    cat_share = np.array([lookup.cat_share.get(c, nan) for c in cats], dtype=f32)

    def days(last: np.ndarray) -> np.ndarray:
        out = ((now_us - last) / _DAY_US).astype(f32)
        out[last == _NAT] = nan
        return out

    ci_days = days(ci_last)
    cc_days = days(cc_last)
    c_days = days(np.full(n, last_any, dtype=np.int64))
    i_interval = item_f[:, ITEM_FEATURES.index("i_interval")]
    i_price = item_f[:, ITEM_FEATURES.index("i_price")]
    c_lines = f32(lines)
    with np.errstate(divide="ignore", invalid="ignore"):
        due = ci_days / np.maximum(i_interval, f32(1.0))  # NaN interval stays NaN
        share = cc_count / max(c_lines, f32(1.0))
        price_rel = i_price / cc_price
        lift = share / np.maximum(cat_share, f32(1e-6))
    customer = {
        "ci_count": ci_count, "ci_days_since": ci_days, "ci_due_ratio": due,
        "cc_count": cc_count, "cc_days_since": cc_days, "cc_share": share, "cc_lift": lift,
        "price_rel": price_rel,
        "c_orders": np.full(n, len(orders), dtype=f32), "c_lines": np.full(n, c_lines, dtype=f32),
        "c_days_since": c_days, "c_categories": np.full(n, len(cc), dtype=f32),
    }
    blocks = [
        np.stack([cand.gen_scores, cand.gen_ranks], axis=2).reshape(n, -1),  # score_g, rank_g interleaved
        cand.n_gens[:, None],
        np.stack([customer[c] for c in CUSTOMER_FEATURES], axis=1) if n else np.zeros((0, len(CUSTOMER_FEATURES)), f32),
        item_f,
    ]
    X = np.concatenate(blocks, axis=1).astype(np.float32)
    X[~np.isfinite(X)] = np.nan  # polars' to_matrix maps NaN to null; ±inf from divisions by zero too
    return X


def rrf_from_ranks(ranks: np.ndarray, k: float = 20.0) -> np.ndarray:
    """Reciprocal-rank fusion Σ_g 1/(k + rank_g) over a (rows, generators) rank matrix, NaN = not
    proposed: the untrained blend, on both paths."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        return np.zeros(ranks.shape[0])
    return (1.0 / (k + np.where(np.isnan(ranks), np.inf, ranks))).sum(axis=1)


def _date_string(ts_us: int) -> str:
    return str(np.datetime64(ts_us, "us").astype("datetime64[D]"))


def rank_one(hybrid: HybridRecommender, cid: str, now: datetime, *, new_only: bool = False) -> pl.DataFrame:
    """``HybridRecommender.rank([cid], now)`` for one customer, returning the columns the rules use:
    ``customer_id, item_id, score, reason_type, source_item_id, source_ts`` sorted best first."""
    lookup = hybrid.item_lookup
    cand = single_candidates(hybrid, cid, exclude_bought=new_only)
    history = hybrid.history.of(cid)
    X = single_features(cand, history, lookup, now)
    items, reason_gen, src_item, src_ts = cand.items, cand.reason_gen, cand.source_item, cand.source_ts
    own_reason = cand.reason
    if new_only and len(items):
        keep = X[:, hybrid.features.index("ci_count")] == 0
        idx = np.flatnonzero(keep)
        X = X[idx]
        items = [items[j] for j in idx]
        reason_gen = [reason_gen[j] for j in idx]
        own_reason = [own_reason[j] for j in idx]
        src_item = [src_item[j] for j in idx]
        src_ts = [src_ts[j] for j in idx]
    ranker = hybrid.ranker_new if new_only and hybrid.ranker_new is not None else hybrid.ranker
    if ranker is not None:
        scores = cascade_scores(ranker, X, items, None, hybrid.cascade) if len(items) else np.zeros(0)
    else:
        scores = rrf_from_ranks(X[:, [hybrid.features.index(f"rank_{g}") for g in hybrid.generators]])
    s32 = np.asarray(scores, dtype=np.float32)
    order = sorted(range(len(items)), key=lambda j: (-s32[j], items[j]))
    names = list(hybrid.generators)
    reasons = [own_reason[j] or hybrid.reasons.get(names[reason_gen[j]], "popular") for j in order]
    sourced = [r in SOURCED_REASONS for r in reasons]  # as ``widen``: shop-wide reasons carry no source
    return pl.DataFrame(
        {
            "customer_id": pl.Series([cid] * len(order), dtype=pl.String),
            "item_id": pl.Series([items[j] for j in order], dtype=pl.String),
            "score": pl.Series(s32[order] if order else s32, dtype=pl.Float32),
            "reason_type": pl.Series(reasons, dtype=pl.String),
            "source_item_id": pl.Series([src_item[j] if ok else None for j, ok in zip(order, sourced, strict=True)],
                                        dtype=pl.String),
            "source_ts": pl.Series([src_ts[j] if ok else None for j, ok in zip(order, sourced, strict=True)],
                                   dtype=pl.Int64).cast(pl.Datetime("us")),
        }
    )


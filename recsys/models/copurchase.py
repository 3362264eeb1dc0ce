"""Item co-purchase: "bought with" complements mined from baskets.

Why a generator of its own: collaborative filtering learns *taste* (customers like yours bought X),
which mostly proposes substitutes of what a customer already owns; cross-sell needs *complements* —
the belt that goes with the trousers in the cart.  Those show up as items bought in the same order
(or shortly after), so they are counted directly on the order × item incidence matrix ``X``:
``X.T @ X`` gives every pair's co-occurrence count in one sparse product (a few seconds on 155k
grocery baskets).  Raw counts favour bestsellers (everyone buys milk with everything), confidence
alone too; lift corrects for popularity but explodes on pairs seen once or twice, so it is shrunk
toward 1 with pseudo-counts, and pairs below ``min_support`` baskets are dropped.

Scores are *added probability*: ``(support − expected) / (baskets with i + shrinkage)``, i.e. how much
buying ``i`` raises the chance of buying ``j`` over its base rate, shrunk toward 0 for rarely seen
items.  It is zero for independent pairs, grows with both association strength and evidence, and
sums meaningfully over a cart (see ``complements``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.dataset import Dataset
from recsys.exceptions import UnknownIdError
from recsys.idmap import IdMap
from recsys.models._implicit_util import SPARSE_ROWS, neighbourhood_top_n, positive_top_n
from recsys.models.base import Explained, OnUnknown, Recommendations, Recommender, check_param, top_n
from recsys.models._overlay import RowTable, ensure_len
from recsys.models._util import (
    csr_from_coo,
    gather_rows,
    index_of,
    purchases_of,
    resolve_rows,
    sorted_ids,
)

__all__ = ["CoPurchase"]

_DAY = 86_400.0
_US = 1_000_000
_BLOCK_CELLS = 2_000_000
#: Below this many (history item × neighbour) rows, sources are found with a numpy sort rather than a join.
_SMALL_EXPANSION = 200_000


# ------------------------------------------------------------------------------ shared helpers
def with_basket_key(purchases: pl.DataFrame) -> pl.DataFrame:
    """Add ``basket_key``: the order id, or the calendar day when the order id is null.

    Why the fallback: sources without order ids still have shopping trips; one customer's purchases
    on one day are the closest stand-in for an order.  Keys are only unique per customer.
    """
    day_key = pl.lit("\x00day:") + pl.col("ts").dt.date().cast(pl.String)
    return purchases.with_columns(basket_key=pl.coalesce(pl.col("order_id"), day_key))


def number_baskets(
    purchases: pl.DataFrame, customers: IdMap, items: IdMap
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Number the baskets of ``purchases`` 0..B-1 in (customer row, time, basket key) order.

    Returns per purchase line its basket and item index (-1 for unknown items), and per basket its
    customer row, first timestamp (epoch seconds) and ordinal within the customer (0 = oldest).
    Grouping runs on integer codes (customer row, hash of the basket key): string group-bys are
    the slow part of fitting on 1.5M lines.
    """
    p = with_basket_key(purchases)
    frame = pl.DataFrame(
        {
            "c": index_of(p["customer_id"], customers),
            "h": p["basket_key"].hash(seed=0),
            "key": p["basket_key"],
            "ts": p["ts"].dt.epoch("us"),
        }
    )
    baskets = (
        frame.group_by("c", "h")
        .agg(pl.col("ts").min(), pl.col("key").first())
        .sort("c", "ts", "key")
        .with_row_index("b")
    )
    line_basket = (
        frame.select("c", "h")
        .join(baskets.select("c", "h", "b"), on=["c", "h"], how="left", maintain_order="left")["b"]
        .to_numpy()
        .astype(np.int64)
    )
    basket_cust = baskets["c"].to_numpy().astype(np.int64)
    first = np.searchsorted(basket_cust, basket_cust, side="left")
    ordinal = np.arange(len(basket_cust), dtype=np.int64) - first
    return line_basket, index_of(p["item_id"], items), basket_cust, baskets["ts"].to_numpy() / _US, ordinal


# ---------------------------------------------------------------------------------- the model
class CoPurchase(Recommender):
    """Items bought together (same order, or within ``window_days`` after), as "bought with" complements.

    Parameters
    ----------
    window_days
        0 counts only items in the same order (or, without order ids, the same customer-day).
        ``> 0`` also counts items the same customer bought up to ``window_days`` later; the relation
        is then directional (``i`` → ``j`` means ``j`` was bought with or after ``i``).
    min_support
        Minimum number of baskets in which a pair occurs for it to be kept.
    shrinkage
        Pseudo-count pulling lift toward 1 and the score toward 0 for pairs with little evidence.
    max_neighbours
        Neighbours kept per item (best scores first).
    half_life_days
        How ``recommend`` weighs a customer's history.  ``None``: by order recency — an item last
        bought in the customer's k-th most recent order weighs ``1 / k``.  A float: an item last
        bought ``d`` days before the customer's latest purchase weighs ``0.5 ** (d / half_life_days)``.

    Notes
    -----
    ``partial_fit`` folds new purchases into customers' histories (the neighbour table stays as
    trained); it assumes the new events are more recent than what the model has seen.
    """

    reason = "bought_with"

    def __init__(
        self,
        *,
        window_days: float = 0.0,
        min_support: int = 3,
        shrinkage: float = 10.0,
        max_neighbours: int = 50,
        half_life_days: float | None = None,
        max_history_orders: int | None = 20,
    ) -> None:
        self.window_days = window_days
        self.min_support = min_support
        self.shrinkage = shrinkage
        self.max_neighbours = max_neighbours
        self.half_life_days = half_life_days
        self.max_history_orders = max_history_orders

    def _validate_params(self) -> None:
        check_param(
            self,
            "window_days",
            self.window_days,
            "a float in [0, inf)",
            isinstance(self.window_days, (int, float)) and self.window_days >= 0,
        )
        check_param(
            self,
            "min_support",
            self.min_support,
            "an int in [1, inf)",
            isinstance(self.min_support, (int, np.integer)) and self.min_support >= 1,
        )
        check_param(
            self,
            "shrinkage",
            self.shrinkage,
            "a float in [0, inf)",
            isinstance(self.shrinkage, (int, float)) and self.shrinkage >= 0,
        )
        check_param(
            self,
            "max_neighbours",
            self.max_neighbours,
            "an int in [1, inf)",
            isinstance(self.max_neighbours, (int, np.integer)) and self.max_neighbours >= 1,
        )
        hl = self.half_life_days
        check_param(
            self,
            "half_life_days",
            hl,
            "a float in (0, inf) or None",
            hl is None or (isinstance(hl, (int, float)) and hl > 0),
        )

    # ------------------------------------------------------------------------------------ fit
    def _fit(self, data: Dataset) -> None:
        p = purchases_of(data.interactions)
        self.item_ids_ = sorted_ids(data.items["item_id"], p["item_id"])
        self.customer_ids_ = sorted_ids(p["customer_id"])
        b, item, basket_cust, basket_sec, ordinal = number_baskets(p, self.customer_ids_, self.item_ids_)
        n_items, n_baskets = len(self.item_ids_), len(basket_cust)
        ok = item >= 0
        x = sp.csr_matrix((np.ones(int(ok.sum()), np.float32), (b[ok], item[ok])), shape=(n_baskets, n_items))
        x.sum_duplicates()
        x.data[:] = 1.0
        w = x if self.window_days == 0 else self._window_incidence(x, basket_cust, basket_sec)
        self.n_baskets_total_ = n_baskets
        self._neighbours(x, w, n_baskets)
        n_cust = len(self.customer_ids_)
        self._set_history(basket_cust[b[ok]], item[ok], basket_sec[b[ok]], ordinal[b[ok]])
        self.n_orders_ = np.bincount(basket_cust, minlength=n_cust).astype(np.int64)
        self.cust_last_ts_ = np.full(n_cust, -np.inf)
        np.maximum.at(self.cust_last_ts_, basket_cust, basket_sec)
        self.reference_time_: datetime = p["ts"].max() if p.height else datetime(1970, 1, 1)  # type: ignore[assignment]

    def _window_incidence(self, x: sp.csr_matrix, cust: np.ndarray, sec: np.ndarray) -> sp.csr_matrix:
        """Basket × item: items the same customer bought in this basket or up to ``window_days`` later."""
        if len(sec) == 0:
            return x
        t = np.round(sec - sec.min()).astype(np.int64)
        window = round(self.window_days * _DAY)
        key = cust * (int(t.max()) + window + 1) + t  # baskets are sorted by (customer, ts): key is sorted
        starts = np.searchsorted(key, key, side="left")
        ends = np.searchsorted(key, key + window, side="right")
        lens = ends - starts
        rows = np.repeat(np.arange(len(key)), lens)
        cols = np.repeat(starts, lens) + np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        a = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(key), len(key)))
        w = (a @ x).tocsr()
        w.data[:] = 1.0
        return w

    def _neighbours(self, x: sp.csr_matrix, w: sp.csr_matrix, n_baskets: int) -> None:
        """Support, confidence, shrunk lift and score of every kept pair, as CSR arrays."""
        n_items = x.shape[1]
        item_baskets = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
        window_baskets = np.asarray(w.sum(axis=0)).ravel().astype(np.float64)
        base_rate = window_baskets / max(n_baskets, 1)
        # Items in fewer than min_support baskets (windows) cannot reach min_support with anything:
        # dropping their columns first shrinks the product a lot on long-tailed catalogues.
        (kept_i,) = np.nonzero(item_baskets >= self.min_support)
        (kept_j,) = np.nonzero(window_baskets >= self.min_support)
        co = (x[:, kept_i].T.tocsr() @ w[:, kept_j]).tocsr()
        co.data[co.data < self.min_support] = 0
        co.eliminate_zeros()
        co = co.tocoo()
        i, j = kept_i[co.row], kept_j[co.col]
        support = co.data.astype(np.float64)
        expected = item_baskets[i] * base_rate[j]
        keep = (i != j) & (support > expected)
        i, j, support, expected = i[keep], j[keep], support[keep], expected[keep]
        s = float(self.shrinkage)
        confidence = support / item_baskets[i]
        lift = (support + s) / (expected + s) if s > 0 else support / expected
        score = (support - expected) / (item_baskets[i] + s)
        order = np.lexsort((j, -score, i))
        i, j = i[order], j[order]
        support, confidence, lift, score = support[order], confidence[order], lift[order], score[order]
        starts = np.searchsorted(i, np.arange(n_items))
        rank = np.arange(len(i)) - starts[i] if len(i) else np.zeros(0, np.int64)
        sel = rank < self.max_neighbours
        self.item_baskets_ = item_baskets.astype(np.float32)
        self.nb_indptr_ = csr_from_coo(i[sel], n_items)
        self.nb_indices_ = j[sel].astype(np.int32)
        self.nb_score_ = score[sel].astype(np.float32)
        self.nb_support_ = support[sel].astype(np.int32)
        self.nb_confidence_ = confidence[sel].astype(np.float32)
        self.nb_lift_ = lift[sel].astype(np.float32)
        self._build_matrix()

    def _build_matrix(self) -> None:
        n = len(self.item_ids_)
        self.nb_ = sp.csr_matrix((self.nb_score_, self.nb_indices_, self.nb_indptr_), shape=(n, n))

    def _reduce_history(
        self, c: np.ndarray, i: np.ndarray, ts: np.ndarray, ordinal: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Purchase rows reduced to one entry per customer × item (latest time and order ordinal),
        sorted by (customer, item): ``(customer of each entry, columns)``."""
        n_items = max(len(self.item_ids_), 1)
        key = c.astype(np.int64) * n_items + i.astype(np.int64)
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
        if len(key):
            ts = np.maximum.reduceat(ts[order], starts)
            ordinal = np.maximum.reduceat(ordinal[order], starts)
        first = key[starts]
        return first // n_items, {"items": (first % n_items).astype(np.int32),
                                  "ts": np.asarray(ts, dtype=np.float64), "ord": np.asarray(ordinal, dtype=np.int64)}

    def _set_history(self, c: np.ndarray, i: np.ndarray, ts: np.ndarray, ordinal: np.ndarray) -> None:
        """Customers' histories (``history_``: one row per customer; fold-in replaces a row at a time)."""
        owner, cols = self._reduce_history(c, i, ts, ordinal)
        self.history_ = RowTable(csr_from_coo(owner, len(self.customer_ids_)), cols)

    # ---------------------------------------------------------------------------------- query
    def _history_weights(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(local row, item, weight, time bought) of the histories of ``rows``: recent orders count most."""
        local, h = self.history_.gather(rows)
        cust = rows[local]
        k = self.n_orders_[cust] - h["ord"]  # 1 = the latest order
        hist_ts = h["ts"]
        items = h["items"].astype(np.int64)
        if self.max_history_orders is not None:
            # a grocery customer has 100+ orders; weights of old ones are tiny and they cost the most
            recent = k <= self.max_history_orders
            local, cust, k, hist_ts, items = local[recent], cust[recent], k[recent], hist_ts[recent], items[recent]
        if self.half_life_days is None:
            w = 1.0 / np.maximum(k, 1)
        else:
            age = (self.cust_last_ts_[cust] - hist_ts) / _DAY
            w = np.power(0.5, np.clip(age, 0, None) / self.half_life_days)
        return local, items, w, hist_ts

    def _recommend(self, rows: np.ndarray, n: int, *, exclude_bought: bool) -> tuple[np.ndarray, np.ndarray]:
        """Recency-weighted sum of the neighbour rows of each customer's history.

        ``neighbourhood_top_n`` picks dense blocks (deep grocery histories) or the sparse product
        (shop-scale catalogues, where a customer touches a few thousand items).
        """
        n_items = len(self.item_ids_)
        local, items, w, _ = self._history_weights(rows)
        h = sp.csr_matrix((w.astype(np.float32), (local, items)), shape=(len(rows), n_items))
        if 0 < len(rows) <= SPARSE_ROWS:  # the per-request path: the product touches a few thousand items
            return positive_top_n(h @ self.nb_, min(n, n_items), h if exclude_bought else None)
        return neighbourhood_top_n(h, self.nb_, n, exclude_bought=exclude_bought, dense_cells=_BLOCK_CELLS)

    def complements(
        self,
        item_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        exclude: Sequence[str] | None = None,
        on_unknown: OnUnknown = "empty",
    ) -> Recommendations:
        """Top ``n`` items bought with a cart, as 1-d ``(ids, scores)``.

        Parameters
        ----------
        item_ids
            One item id, or a list of item ids forming **one cart** (not a batch: the neighbours of
            every cart item are summed).  Either way the result is 1-d, padded with ``""``/``-inf``.
        n
            Number of items returned.
        exclude
            Further item ids never to return; the cart items themselves are always excluded.
        on_unknown
            ``"empty"`` ignores item ids the model has never seen (a cart of only unknown items
            gives an all-padding row); ``"raise"`` raises ``UnknownIdError`` naming the first one.
        """
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        check_param(
            self, "on_unknown", on_unknown, "one of 'empty', 'raise'", on_unknown in ("empty", "raise")
        )
        cart_ids = [item_ids] if isinstance(item_ids, str) else [str(v) for v in item_ids]
        cart = self.item_ids_.index(cart_ids)
        if on_unknown == "raise" and (cart < 0).any():
            bad = cart_ids[int(np.flatnonzero(cart < 0)[0])]
            raise UnknownIdError(f"{type(self).__name__}: unknown item id {bad!r} in the cart")
        cart = np.unique(cart[cart >= 0])
        scores = np.asarray(self.nb_[cart].sum(axis=0), dtype=np.float64).ravel().astype(np.float32)
        scores[scores <= 0] = -np.inf
        scores[cart] = -np.inf
        if exclude:
            ex = self.item_ids_.index([str(v) for v in exclude])
            scores[ex[ex >= 0]] = -np.inf
        idx, vals = top_n(scores[None, :], n)
        ids, out = self._to_ids(idx, vals, n)
        return Recommendations(ids[0], out[0])

    def neighbours_frame(self, item_id: str) -> pl.DataFrame:
        """The kept neighbours of ``item_id``, best first, with the statistics behind the score.

        Columns: ``item_id``, ``neighbour_id``, ``support`` (baskets with both), ``confidence``
        (P(neighbour | item)), ``lift`` (shrunk toward 1), ``score``.
        """
        self._check_fitted()
        i = self.item_ids_.get(str(item_id))
        if i < 0:
            raise UnknownIdError(f"{type(self).__name__}: unknown item id {item_id!r}")
        sl = slice(int(self.nb_indptr_[i]), int(self.nb_indptr_[i + 1]))
        nbr = self.nb_indices_[sl]
        return pl.DataFrame(
            {
                "item_id": pl.Series([str(item_id)] * len(nbr), dtype=pl.String),
                "neighbour_id": pl.Series(self.item_ids_.ids[nbr].astype(str).tolist(), dtype=pl.String),
                "support": pl.Series(self.nb_support_[sl], dtype=pl.Int32),
                "confidence": pl.Series(self.nb_confidence_[sl], dtype=pl.Float32),
                "lift": pl.Series(self.nb_lift_[sl], dtype=pl.Float32),
                "score": pl.Series(self.nb_score_[sl], dtype=pl.Float32),
            }
        )

    def recommend_with_sources(
        self,
        customer_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        exclude_bought: bool = False,
        on_unknown: OnUnknown = "raise",
    ) -> pl.DataFrame:
        """``recommend`` as a long frame with the purchase that explains each item.

        Columns: ``customer_id``, ``rank`` (1 = best), ``item_id``, ``score`` (as ``recommend``),
        ``source_item_id`` (the past purchase contributing most to the score) and ``source_ts``
        (when the customer last bought it) — "bought with X that you bought on DATE".  Padding
        rows are omitted, so unknown customers (with ``on_unknown="empty"``) have no rows.
        """
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        ids, rows = resolve_rows(self, customer_ids, on_unknown)
        b, rank, items, scores, src_item, src_us = self._explained(rows, n, exclude_bought)
        return pl.DataFrame(
            {
                "customer_id": pl.Series(ids.astype(str), dtype=pl.String).gather(b),
                "rank": pl.Series(rank + 1, dtype=pl.Int32),
                "item_id": self.item_ids_.take(items),
                "score": pl.Series(scores[b, rank], dtype=pl.Float32),
                "source_item_id": self.item_ids_.take(src_item),
                "source_ts": pl.Series(src_us, dtype=pl.Int64).cast(pl.Datetime("us")),
            }
        )

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
        return self._explain(rows, n, exclude_bought)

    def _explained(self, rows: np.ndarray, n: int, exclude_bought: bool) -> tuple[np.ndarray, ...]:
        """The top ``n`` and their sources as index arrays: (row, rank, item, scores, source item, source
        time in µs)."""
        idx, scores = self._recommend(rows, n, exclude_bought=exclude_bought)
        b, rank = np.nonzero(idx >= 0)
        rec_items = idx[b, rank]
        src_item, src_ts = self._sources(rows, b, rec_items)
        return b, rank, rec_items, scores, src_item, np.round(np.asarray(src_ts) * _US).astype(np.int64)

    def _explain(self, rows: np.ndarray, n: int, exclude_bought: bool) -> Explained:
        b, rank, rec_items, scores, src_item, src_us = self._explained(rows, n, exclude_bought)
        return Explained(
            b, (rank + 1).astype(np.int32), self.item_ids_.ids[rec_items].astype(str).astype(object),
            scores[b, rank].astype(np.float32), self.item_ids_.ids[src_item].astype(str).astype(object), src_us,
        )

    def _sources(self, rows: np.ndarray, b: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each recommended (local row ``b``, item): the history item with the largest contribution."""
        src_item = np.zeros(len(b), dtype=np.int64)
        src_ts = np.zeros(len(b), dtype=np.float64)
        if len(b) == 0:
            return src_item, src_ts
        n_items = len(self.item_ids_)
        # Expand history × neighbours (≤ max_neighbours per history item), keep the wanted pairs.
        local, hist_items, w, hist_ts = self._history_weights(rows)
        exp_local, exp_pos = gather_rows(self.nb_indptr_, hist_items)
        exp_b = local[exp_local]
        exp_j = self.nb_indices_[exp_pos].astype(np.int64)
        keys = b * n_items + items
        exp_key = exp_b * n_items + exp_j
        if len(exp_key) <= _SMALL_EXPANSION:
            # one customer (the per-request path): a sort of a few thousand rows in numpy beats
            # building frames for a join
            contrib = w[exp_local] * self.nb_score_[exp_pos].astype(np.float64)
            order_k = np.argsort(keys, kind="stable")
            at = np.searchsorted(keys, exp_key, sorter=order_k)
            at = np.minimum(at, len(keys) - 1)
            hit = keys[order_k[at]] == exp_key
            kk = order_k[at[hit]]
            hi = hist_items[exp_local][hit]
            order = np.lexsort((hi, -contrib[hit], kk))  # by k, then contrib desc, then item
            kk, first = kk[order], np.r_[True, kk[order][1:] != kk[order][:-1]]
            src_item[kk[first]] = hi[order][first]
            src_ts[kk[first]] = hist_ts[exp_local][hit][order][first]
            return src_item, src_ts
        wanted = pl.DataFrame({"key": keys, "k": np.arange(len(b))})
        best = (
            pl.DataFrame(
                {
                    "key": exp_key,
                    "i": hist_items[exp_local],
                    "ts": hist_ts[exp_local],
                    "contrib": w[exp_local] * self.nb_score_[exp_pos].astype(np.float64),
                }
            )
            .join(wanted, on="key")
            .sort(["k", "contrib", "i"], descending=[False, True, False])
            .group_by("k", maintain_order=True)
            .first()
        )
        k = best["k"].to_numpy()
        src_item[k] = best["i"].to_numpy()
        src_ts[k] = best["ts"].to_numpy()
        return src_item, src_ts

    # ------------------------------------------------------------------------------- fold-in
    def partial_fit(self, interactions: pl.DataFrame) -> CoPurchase:
        """Fold new purchases into customers' histories (the neighbour table stays as trained).

        New customers are added; items the model has never seen are ignored (they have no
        neighbours).  Each new order becomes the customer's most recent one.
        """
        self._check_fitted()
        p = purchases_of(interactions)
        if p.height == 0:
            return self
        self.customer_ids_ = self.customer_ids_.extend(p["customer_id"].unique().sort().to_list())
        n_cust = len(self.customer_ids_)
        self.history_.grow(n_cust)
        self.n_orders_ = ensure_len(self.n_orders_, n_cust, 0)
        self.cust_last_ts_ = ensure_len(self.cust_last_ts_, n_cust, -np.inf)
        b, item, basket_cust, basket_sec, ordinal = number_baskets(p, self.customer_ids_, self.item_ids_)
        ordinal = ordinal + self.n_orders_[basket_cust]  # new orders come after the known ones
        ok = item >= 0
        # only the customers in the event: their rows are recomputed, nobody else's is touched
        rows = np.unique(basket_cust)
        old_local, old = self.history_.gather(rows)
        owner, cols = self._reduce_history(
            np.concatenate([rows[old_local], basket_cust[b[ok]]]),
            np.concatenate([old["items"].astype(np.int64), item[ok]]),
            np.concatenate([old["ts"], basket_sec[b[ok]]]),
            np.concatenate([old["ord"], ordinal[b[ok]]]),
        )
        cut = np.searchsorted(owner, np.r_[rows, rows[-1] + 1] if len(rows) else rows)
        self.history_.set_many(rows, [{k: v[cut[j]:cut[j + 1]] for k, v in cols.items()} for j in range(len(rows))])
        np.add.at(self.n_orders_, basket_cust, 1)
        np.maximum.at(self.cust_last_ts_, basket_cust, basket_sec)
        return self

    def forget(self, customer_ids: Sequence[str]) -> CoPurchase:
        """Erase customers' histories (their past baskets stay in the aggregate pair counts)."""
        self._check_fitted()
        rows = self.customer_ids_.index([str(c) for c in customer_ids])
        drop = np.zeros(len(self.customer_ids_), dtype=bool)
        drop[rows[rows >= 0]] = True
        keep = np.flatnonzero(~drop)
        self.customer_ids_ = IdMap(self.customer_ids_.ids[keep])
        self.history_.keep_rows(keep)
        self.n_orders_ = self.n_orders_[keep]
        self.cust_last_ts_ = self.cust_last_ts_[keep]
        return self

    # --------------------------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        hist_indptr, hist = self.history_.arrays()
        n_cust = len(self.customer_ids_)
        arrays = {
            "item_ids": self.item_ids_.to_numpy(),
            "customer_ids": self.customer_ids_.to_numpy(),
            "item_baskets": self.item_baskets_,
            "nb_indptr": self.nb_indptr_,
            "nb_indices": self.nb_indices_,
            "nb_score": self.nb_score_,
            "nb_support": self.nb_support_,
            "nb_confidence": self.nb_confidence_,
            "nb_lift": self.nb_lift_,
            "hist_indptr": hist_indptr,
            "hist_items": hist["items"],
            "hist_ts": hist["ts"],
            "hist_ord": hist["ord"],
            "n_orders": self.n_orders_[:n_cust],
            "cust_last_ts": self.cust_last_ts_[:n_cust],
        }
        meta = {
            "reference_time": self.reference_time_.isoformat(),
            "n_baskets_total": int(self.n_baskets_total_),
        }
        return arrays, meta

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.item_ids_ = IdMap.of_saved(arrays["item_ids"])
        self.customer_ids_ = IdMap.of_saved(arrays["customer_ids"])
        for name in (
            "item_baskets",
            "nb_indptr",
            "nb_indices",
            "nb_score",
            "nb_support",
            "nb_confidence",
            "nb_lift",
            "n_orders",
            "cust_last_ts",
        ):
            setattr(self, f"{name}_", arrays[name])
        self.history_ = RowTable(arrays["hist_indptr"], {"items": arrays["hist_items"], "ts": arrays["hist_ts"],
                                                         "ord": arrays["hist_ord"]}, len(self.customer_ids_))
        self.reference_time_ = datetime.fromisoformat(meta["reference_time"])
        self.n_baskets_total_ = int(meta["n_baskets_total"])
        self._build_matrix()

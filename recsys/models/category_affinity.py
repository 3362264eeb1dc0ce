"""Category affinity: which categories a customer over-indexes on, and their bestsellers.

Why a separate generator: collaborative filtering knows items, not intent.  "This customer buys
trousers three times as often as the average shopper" is both a strong candidate source (the
category's current bestsellers) and an explanation a merchandiser understands.  Shares are time
decayed (tastes drift) and shrunk toward the shop average with a Dirichlet prior, so a customer with
one purchase does not "over-index" 20× on whatever they bought once.

The module also holds the small vectorised helpers both category generators use to turn
``(customer, category, weight)`` pairs into ranked item lists (``category_complements`` imports them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.dataset import Dataset
from recsys.exceptions import ModelFitError, UnknownIdError
from recsys.idmap import IdMap
from recsys.models.base import Recommender, check_param
from recsys.models._overlay import OverlayCSR
from recsys.models._util import (
    binary_matrix,
    bought_keys,
    decayed_item_counts,
    encode,
    group_candidates,
    group_index,
    pack,
    purchases_only,
    rank_within,
    sorted_ids,
    ranked_group_items,
    to_us,
    top_per_position,
)

__all__ = ["CategoryAffinity", "AffinityLevel"]

AffinityLevel = Literal["category", "department"]

#: Half-life (days) of the item popularity used to rank items *within* a category; the same default
#: as ``Popularity`` so "bestseller" means the same thing everywhere.
ITEM_HALF_LIFE_DAYS = 30.0
_US_PER_DAY = 86_400_000_000


# ----------------------------------------------------------------------------- shared helpers
def csr_from_arrays(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """A CSR matrix from its saved ``indptr``, ``indices`` and ``data``."""
    return sp.csr_matrix((data, indices, indptr), shape=shape)


# --------------------------------------------------------------------------------- the model
class CategoryAffinity(Recommender):
    """Per-customer time-decayed category (or department) shares, shrunk toward the shop average.

    For customer ``c`` and group ``g`` (a category, or a department with ``level="department"``),
    with ``w[c, g]`` the decayed number of purchase lines, ``W[c]`` their sum and ``s[g]`` the shop's
    decayed share of ``g``:

    * ``share = w[c, g] / W[c]`` — the raw decayed share;
    * ``affinity = (w[c, g] + prior · s[g]) / (W[c] + prior)`` — the posterior mean share under a
      Dirichlet prior of strength ``prior`` centred on the shop average;
    * ``lift = affinity / s[g]`` — > 1 means the customer over-indexes on ``g``; with few purchases
      it is pulled toward 1.

    ``recommend`` proposes the decayed bestsellers of the customer's top ``n`` groups (by affinity,
    among groups they bought), scored ``affinity × item popularity / group's best seller``.

    Items without a category (department) do not count.  A shop with no category data at all cannot
    use this model: ``fit`` raises ``ModelFitError`` saying so, and callers assembling generators are
    expected to catch it and carry on without this one.

    Parameters
    ----------
    half_life_days
        Purchases lose half their weight every ``half_life_days`` before the last training purchase.
    level
        ``"category"`` or ``"department"``: which item attribute the shares are computed over.
    prior
        Dirichlet prior strength in (decayed) purchases; 0 gives raw shares.
    """

    reason = "trending_in_category"

    def __init__(
        self, *, half_life_days: float = 90.0, level: AffinityLevel = "category", prior: float = 10.0
    ) -> None:
        self.half_life_days = half_life_days
        self.level = level
        self.prior = prior

    def _validate_params(self) -> None:
        hl = self.half_life_days
        check_param(
            self,
            "half_life_days",
            hl,
            "a float in (0, inf)",
            isinstance(hl, (int, float)) and not isinstance(hl, bool) and hl > 0,
        )
        check_param(
            self,
            "level",
            self.level,
            "one of 'category', 'department'",
            self.level in ("category", "department"),
        )
        check_param(
            self,
            "prior",
            self.prior,
            "a float in [0, inf)",
            isinstance(self.prior, (int, float)) and not isinstance(self.prior, bool) and self.prior >= 0,
        )

    # ------------------------------------------------------------------- fit
    def _fit(self, data: Dataset) -> None:
        column = self.level
        if not data.has_categories or data.items[column].null_count() == data.items.height:
            raise ModelFitError(
                f"{type(self).__name__}(level={column!r}): the item catalogue of {data.source!r} has no "
                f"{column} values, so category affinity cannot be learned; fit without this generator"
            )
        purchases = data.purchases
        if purchases.height == 0:
            raise ModelFitError(
                f"{type(self).__name__}: {data.source!r} has no purchases to learn affinities from"
            )
        self.item_ids_ = IdMap.from_values(data.items["item_id"].to_list())
        self.customer_ids_ = sorted_ids(purchases["customer_id"])
        self.reference_time_: datetime = purchases["ts"].max()  # type: ignore[assignment]
        self.item_group_, self.groups_ = group_index(data.items, self.item_ids_, column)
        events = encode(purchases, self.customer_ids_, self.item_ids_, self.item_group_)
        c, g, w = self._weights(events)
        weights = sp.csr_matrix((w, (c, g)), shape=(len(self.customer_ids_), len(self.groups_)))
        weights.sum_duplicates()
        self.weights_ = OverlayCSR(weights)
        self.group_weight_ = np.asarray(weights.sum(axis=0)).ravel()
        if self.group_weight_.sum() <= 0:
            raise ModelFitError(f"{type(self).__name__}: no purchase of {data.source!r} has a {column}")
        self.item_pop_ = decayed_item_counts(
            events, len(self.item_ids_), self.reference_time_, ITEM_HALF_LIFE_DAYS
        )
        self.bought_ = OverlayCSR(binary_matrix(events, (len(self.customer_ids_), len(self.item_ids_))))
        self._derive()

    def _weights(self, events: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(customer, group, weight)`` of every line with a group: decayed relative to ``reference_time_``."""
        events = events.filter(pl.col("g") >= 0)
        age = (to_us(self.reference_time_) - events["t"].to_numpy()) / _US_PER_DAY
        return events["c"].to_numpy(), events["g"].to_numpy(), np.power(0.5, age / self.half_life_days)

    def _derive(self) -> None:
        total = float(self.group_weight_.sum())
        self.shop_share_ = self.group_weight_ / total if total > 0 else np.zeros_like(self.group_weight_)
        self.ranked_ = ranked_group_items(self.item_group_, self.item_pop_, len(self.groups_))

    # -------------------------------------------------------------- affinity
    def _pairs(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """For known rows: ``(batch position, group, share, affinity, lift)`` of every bought group."""
        pos = np.flatnonzero(rows >= 0)
        block = self.weights_[rows[pos]]
        total = np.zeros(len(rows))
        total[pos] = np.asarray(block.sum(axis=1)).ravel()
        sub = block.tocoo()
        keep = sub.data > 0
        p, g, w = pos[sub.row[keep]].astype(np.int64), sub.col[keep].astype(np.int64), sub.data[keep]
        s = self.shop_share_[g]
        share = w / total[p]
        affinity = (w + self.prior * s) / (total[p] + self.prior)
        lift = np.divide(affinity, s, out=np.ones_like(affinity), where=s > 0)
        return p, g, share, affinity, lift

    def _ranked_pairs(self, rows: np.ndarray, n: int | None) -> tuple[np.ndarray, ...]:
        """``_pairs`` sorted by position then affinity, with 0-based ranks, cut to ``n`` per position."""
        p, g, share, affinity, lift = self._pairs(rows)
        order = np.lexsort((g, -affinity, p))
        p, g, share, affinity, lift = p[order], g[order], share[order], affinity[order], lift[order]
        rank = rank_within(p)
        keep = rank < n if n is not None else np.ones(len(p), dtype=bool)
        return p[keep], g[keep], share[keep], affinity[keep], lift[keep], rank[keep]

    def top_categories(self, customer_ids: str | Sequence[str], n: int = 5) -> pl.DataFrame:
        """The ``n`` groups each customer has the highest affinity for (among groups they bought).

        Returns a polars frame ``(customer_id, rank, <level>, affinity, lift, share)`` with rank 1 =
        strongest, customers in the order given; unknown customers raise ``UnknownIdError``.
        """
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        ids = np.array([customer_ids] if isinstance(customer_ids, str) else list(customer_ids), dtype=object)
        rows = self.customer_ids_.index(ids)
        if (rows < 0).any():
            raise UnknownIdError(f"{type(self).__name__}: unknown customer id {ids[rows < 0][0]!r}")
        p, g, share, affinity, lift, rank = self._ranked_pairs(rows, n)
        return pl.DataFrame(
            {
                "customer_id": pl.Series(ids[p].astype(str), dtype=pl.String),
                "rank": pl.Series(rank + 1, dtype=pl.Int32),
                self.level: pl.Series(self.groups_[g].astype(str), dtype=pl.String),
                "affinity": affinity,
                "lift": lift,
                "share": share,
            }
        )

    def affinity_frame(self) -> pl.DataFrame:
        """Every (customer, group) with purchases: ``(customer_id, <level>, share, affinity, lift)``.

        The group column is named after ``level`` (``category`` or ``department``).
        """
        self._check_fitted()
        rows = np.arange(len(self.customer_ids_))
        p, g, share, affinity, lift = self._pairs(rows)
        return pl.DataFrame(
            {
                "customer_id": pl.Series(self.customer_ids_.ids[p].astype(str), dtype=pl.String),
                self.level: pl.Series(self.groups_[g].astype(str), dtype=pl.String),
                "share": share,
                "affinity": affinity,
                "lift": lift,
            }
        ).sort("customer_id", "affinity", descending=[False, True], maintain_order=True)

    # ----------------------------------------------------------------- query
    def _recommend(self, rows: np.ndarray, n: int, *, exclude_bought: bool) -> tuple[np.ndarray, np.ndarray]:
        p, g, _share, affinity, _lift, _rank = self._ranked_pairs(rows, n)
        bought = bought_keys(self.bought_, rows) if exclude_bought else None
        owner, item, score = group_candidates(p, g, affinity, self.ranked_, self.item_group_, n, bought)
        sel, rank = top_per_position(p[owner], item, score, n)
        return pack(len(rows), n, p[owner][sel], rank, item[sel], score[sel])

    def partial_fit(self, interactions: pl.DataFrame) -> CategoryAffinity:
        """Fold new purchases into the customers' shares (shop shares and bestsellers stay as trained).

        New events are weighted relative to the same reference time as training (newer than it →
        weight above 1), which keeps every customer's shares consistent without re-decaying.
        """
        self._check_fitted()
        purchases = purchases_only(interactions)
        if purchases.height == 0:
            return self
        self.customer_ids_ = self.customer_ids_.extend(purchases["customer_id"].to_list())
        events = encode(purchases, self.customer_ids_, self.item_ids_, self.item_group_)
        self.weights_.add(*self._weights(events), how="sum")
        self.bought_.add(events["c"].to_numpy(), events["i"].to_numpy(), how="or")
        return self

    def forget(self, customer_ids: Sequence[str]) -> CategoryAffinity:
        """Erase customers' shares and purchase flags (shop-level statistics are aggregates and stay)."""
        self._check_fitted()
        rows = self.customer_ids_.index(list(customer_ids))
        rows = rows[rows >= 0]
        keep = np.setdiff1d(np.arange(len(self.customer_ids_)), rows)
        self.customer_ids_ = IdMap(self.customer_ids_.ids[keep])
        self.weights_.keep_rows(keep)
        self.bought_.keep_rows(keep)
        return self

    # ----------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        w = self.weights_.tocsr()
        b = self.bought_.tocsr()
        arrays = {
            "item_ids": self.item_ids_.to_numpy(),
            "customer_ids": self.customer_ids_.to_numpy(),
            "groups": self.groups_.astype(str) if len(self.groups_) else np.array([], dtype="<U1"),
            "item_group": self.item_group_,
            "item_pop": self.item_pop_,
            "group_weight": self.group_weight_,
            "weights_indptr": w.indptr,
            "weights_indices": w.indices,
            "weights_data": w.data,
            "bought_indptr": b.indptr,
            "bought_indices": b.indices,
        }
        return arrays, {"reference_time": self.reference_time_.isoformat()}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.item_ids_ = IdMap.of_saved(arrays["item_ids"])
        self.customer_ids_ = IdMap.of_saved(arrays["customer_ids"])
        self.groups_ = arrays["groups"].astype(object)
        self.item_group_ = arrays["item_group"].astype(np.int64)
        self.item_pop_ = arrays["item_pop"]
        self.group_weight_ = arrays["group_weight"]
        n_c, n_g, n_i = len(self.customer_ids_), len(self.groups_), len(self.item_ids_)
        self.weights_ = OverlayCSR(csr_from_arrays(
            arrays["weights_indptr"], arrays["weights_indices"], arrays["weights_data"], (n_c, n_g)
        ))
        ind = arrays["bought_indices"]
        self.bought_ = OverlayCSR(csr_from_arrays(
            arrays["bought_indptr"], ind, np.ones(len(ind), np.float32), (n_c, n_i)
        ))
        self.reference_time_ = datetime.fromisoformat(meta["reference_time"])
        self._derive()

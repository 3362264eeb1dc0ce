"""Scoring in two steps: the first trees for every candidate, the rest only for each customer's best.

Why: the ranker's trees are the largest cost of a batch of picks (80 trees × ~110 candidates per
customer at H&M scale: ~40 % of ``recommend --all``), yet only a customer's top dozen is served.
Boosted trees add up, so the first trees are a cheap, good estimate of the final order: score every
candidate with them, keep each customer's ``keep`` best, and finish only those (their scores equal the
whole ensemble's, up to the order of a floating-point sum).  A bagged ranker's first trees are one
whole member, a particularly good estimate.  Candidates cut off keep their partial score minus
``PRUNED_OFFSET``, so they still follow every finished one in their first-trees order (the business
rules can reach them when they filter the finished ones out).  Off unless configured: the exact
scores remain the default, and ``bench/quality.py`` measures what a setting costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys.ranking._trees import TreeEnsemble

__all__ = ["Cascade", "PRUNED_OFFSET", "cascade_scores"]

#: Subtracted from a cut-off candidate's partial score: raw scores are logits within about ±30, so
#: every cut-off candidate ranks below every finished one.
PRUNED_OFFSET = 1000.0


@dataclass(frozen=True)
class Cascade:
    """``trees``: how many first trees score every candidate; ``keep``: candidates per customer that
    the remaining trees finish."""

    trees: int
    keep: int

    def to_json(self) -> dict[str, int]:
        """The setting as stored in the bundle manifest."""
        return {"trees": self.trees, "keep": self.keep}

    @classmethod
    def from_json(cls, value: dict[str, int] | None) -> Cascade | None:
        """The setting from the manifest; ``None`` (exact scoring) when absent."""
        return None if not value else cls(int(value["trees"]), int(value["keep"]))


def cascade_scores(ranker: TreeEnsemble, X: np.ndarray, items: pl.Series | Sequence[str],
                   customers: pl.Series | None, cascade: Cascade | None) -> np.ndarray:
    """Scores of the rows of ``X`` — candidate ``items`` of ``customers``, one per row (``None``: all rows
    are one customer's) — through ``cascade`` when given.

    A customer's ``keep`` best by the first trees are finished, ties by item id: which rows are kept
    depends on the customer's own candidates only, so a batch and the per-request path agree.
    """
    n = X.shape[0]
    if cascade is None or cascade.trees >= ranker.n_trees or n == 0:
        return ranker.predict(X)
    head = ranker.predict(X, trees=(0, cascade.trees))
    if customers is None:  # one customer (the per-request path): the same order, without a frame
        names = items.to_list() if isinstance(items, pl.Series) else list(items)
        by_item = np.array(sorted(range(n), key=names.__getitem__), dtype=np.int64)
        rows = by_item[np.argsort(-head[by_item], kind="stable")][: cascade.keep]
    else:
        rows = (
            pl.DataFrame({"c": customers, "s": head, "i": items}).with_row_index("row")
            .sort("c", "s", "i", descending=[False, True, False])
            .filter(pl.int_range(pl.len()).over("c") < cascade.keep)["row"].to_numpy()
        )
    out = head - PRUNED_OFFSET
    if len(rows):
        out[rows] = head[rows] + ranker.predict(X[rows], trees=(cascade.trees, ranker.n_trees))
    return out

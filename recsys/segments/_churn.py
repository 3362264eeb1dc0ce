"""Churn risk: the probability that a customer places *no* order in the next ``horizon_days``.

Why a learned model rather than "days since last order > X": a weekly grocery shopper silent for
ten days and a twice-a-year clothes buyer silent for ten weeks carry very different risks; the
boosted trees learn that from recency *relative* to each customer's own rhythm (``gap_ratio``),
frequency, spend, tenure and the recent trend.  Honesty comes from the time split: ``fit`` at an
earlier cut-off, ``evaluate`` at a later one whose label window training never saw (enforced).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from recsys.dataset import Dataset
from recsys.exceptions import ModelFitError
from recsys.segments._model import WindowModel

__all__ = ["ChurnModel"]


class ChurnModel(WindowModel):
    """P(no order in the next ``horizon_days``) from cut-off features, a gradient-boosted classifier.

    Parameters
    ----------
    horizon_days
        Length of the future window; "churned" = no order in it.  30 by default (a month).
    n_windows
        Training stacks this many cut-offs, one horizon apart, ending at the ``fit`` cut-off (more
        rows for small shops; windows with fewer than 10 customers of history are skipped).
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to scikit-learn's ``HistGradientBoostingClassifier`` (no early stopping, so the fit is
        deterministic).
    random_state
        Seed handed to scikit-learn.

    Attributes
    ----------
    trees_ : TreeEnsemble
        The fitted trees as plain arrays (what ``save`` writes).
    cutoff_ : datetime
        The latest training cut-off; ``evaluate`` refuses cut-offs before ``cutoff_ + horizon``.
    windows_ : list[datetime]
        The cut-offs actually stacked.
    n_train_ : int
        Training rows (customer × window).
    target_mean_ : float
        Churn rate in the training rows.

    Examples
    --------
    >>> from recsys.data.synthetic import generate_shop
    >>> from recsys.segments import ChurnModel, holdout_cutoffs, purchase_lines
    >>> ds = generate_shop(seed=0).dataset
    >>> fit_at, eval_at = holdout_cutoffs(purchase_lines(ds), 30)
    >>> model = ChurnModel().fit(ds, cutoff=fit_at)
    >>> model.evaluate(ds, cutoff=eval_at)["auc"] > 0.65
    True
    """

    kind = "churn"
    output = "churn_risk"

    def __init__(
        self,
        *,
        horizon_days: float = 30.0,
        n_windows: int = 3,
        max_iter: int = 150,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 40,
        l2_regularization: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.horizon_days = horizon_days
        self.n_windows = n_windows
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    # ------------------------------------------------------------------ hooks
    def _estimator(self) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            early_stopping=False, random_state=self.random_state,
        )

    def _target(self, frame: pl.DataFrame) -> np.ndarray:
        return (frame["orders_next"].to_numpy() == 0).astype(np.int64)

    def _check_target(self, y: np.ndarray) -> None:
        if y.min() == y.max():
            what = "churned" if y[0] == 1 else "bought again"
            raise ModelFitError(
                f"ChurnModel: every training customer {what} within {self.horizon_days:g} days; "
                "both outcomes are needed (try another cutoff or horizon_days)"
            )

    def _link(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-raw))

    # ------------------------------------------------------------------- api
    def predict_proba(self, data: Dataset, *, now: datetime | None = None) -> pl.DataFrame:
        """``customer_id, churn_risk`` for every customer with an order up to ``now``.

        Parameters
        ----------
        data
            The shop; purchases after ``now`` are ignored.
        now
            Reference time.  Default: the last purchase in ``data``.
        """
        feats, p = self._predict_frame(data, now)
        return feats.select("customer_id").with_columns(pl.Series("churn_risk", p, dtype=pl.Float64))

    def evaluate(self, data: Dataset, *, cutoff: datetime | None = None) -> dict[str, Any]:
        """Discrimination and calibration on a window the model never saw.

        Parameters
        ----------
        data
            The shop, including the ``horizon_days`` after ``cutoff``.
        cutoff
            Features at ``cutoff``, labels from ``(cutoff, cutoff + horizon]``.  Default: the last
            purchase − ``horizon_days``.  Must be ≥ the fit cut-off + ``horizon_days``.

        Returns
        -------
        dict
            ``auc`` (ROC AUC of ``churn_risk`` vs churned), ``brier``, ``n`` (customers with history),
            ``base_rate`` (share churned), ``auc_recency`` (AUC of plain days-since-last-order — what
            the model adds over the obvious rule), ``log_loss``, ``cutoff``, ``horizon_days``.
            AUCs are NaN when only one outcome occurs.
        """
        from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

        frame, p, cutoff = self._eval_frame(data, cutoff)
        y = self._target(frame)
        both = 0 < y.sum() < len(y)
        rec = frame["recency_days"].to_numpy()
        return {
            "auc": float(roc_auc_score(y, p)) if both else float("nan"),
            "auc_recency": float(roc_auc_score(y, rec)) if both else float("nan"),
            "brier": float(brier_score_loss(y, p)),
            "log_loss": float(log_loss(y, np.clip(p, 1e-9, 1 - 1e-9), labels=[0, 1])),
            "n": int(len(y)),
            "base_rate": float(y.mean()) if len(y) else float("nan"),
            "cutoff": cutoff.isoformat(),
            "horizon_days": float(self.horizon_days),
        }

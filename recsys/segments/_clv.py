"""Expected customer value: spend over the next ``horizon_days``, learned from cut-off features.

Why a regressor and not BG/NBD + Gamma-Gamma: the probabilistic models assume a stationary purchase
rate, a once-and-for-all dropout and spend independent of frequency; a fashion shop with seasons and
a grocery with weekly baskets break all three, and the regressor sees the same features as the churn
model (recency relative to own rhythm, trend, basket breadth).  It is judged the same honest way: a
later window it never saw, against two naive forecasts — "the same as last period" and "the
customer's historical run rate" — on per-customer MAE and on the error of the total.

The default loss is Poisson (log link): spend is non-negative with many zeros and a long tail, and
the log link keeps predictions positive and multiplicative in the features.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from recsys.dataset import Dataset
from recsys.exceptions import ModelFitError
from recsys.models.base import check_param
from recsys.segments._model import WindowModel

__all__ = ["CLVModel"]

CLVLoss = Literal["poisson", "squared_error"]


def _top_share(score: np.ndarray, actual: np.ndarray, share: float = 0.1) -> float:
    """Share of the actual total captured by the top ``share`` of customers ranked by ``score``."""
    total = actual.sum()
    if len(actual) == 0 or total <= 0:
        return float("nan")
    k = max(1, int(round(share * len(actual))))
    order = np.lexsort((np.arange(len(score)), -score))  # ties by row order: deterministic
    return float(actual[order[:k]].sum() / total)


class CLVModel(WindowModel):
    """Expected spend in the next ``horizon_days`` per customer (a gradient-boosted regressor).

    Parameters
    ----------
    horizon_days
        The value horizon: ``expected_clv`` is the predicted spend over this many days.  90 by
        default (a season for fashion, a quarter for grocery).
    n_windows
        Training stacks this many cut-offs, one horizon apart, ending at the ``fit`` cut-off.
    loss
        ``"poisson"`` (log link, default) or ``"squared_error"``.
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to scikit-learn's ``HistGradientBoostingRegressor`` (no early stopping).
    random_state
        Seed handed to scikit-learn.

    Attributes
    ----------
    trees_, cutoff_, windows_, n_train_
        As in ``ChurnModel``.
    target_mean_ : float
        Mean spend per customer and window in training.
    """

    kind = "clv"
    output = "expected_clv"
    _LOSSES: ClassVar[tuple[str, ...]] = ("poisson", "squared_error")

    def __init__(
        self,
        *,
        horizon_days: float = 90.0,
        n_windows: int = 2,
        loss: CLVLoss = "poisson",
        max_iter: int = 150,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 40,
        l2_regularization: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.horizon_days = horizon_days
        self.n_windows = n_windows
        self.loss = loss
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    # ------------------------------------------------------------------ hooks
    def _extra_params(self) -> tuple[str, ...]:
        return ("loss",)

    def _validate_extra(self) -> None:
        check_param(self, "loss", self.loss, f"one of {list(self._LOSSES)}", self.loss in self._LOSSES)

    def _estimator(self) -> Any:
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            loss=self.loss, max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False, random_state=self.random_state,
        )

    def _target(self, frame: pl.DataFrame) -> np.ndarray:
        return np.maximum(frame["spend_next"].to_numpy().astype(np.float64), 0.0)

    def _check_target(self, y: np.ndarray) -> None:
        if not np.any(y > 0):
            raise ModelFitError(
                f"CLVModel: no training customer spent anything within {self.horizon_days:g} days after a "
                "cut-off (no prices in the data, or no repeat purchases); nothing to learn"
            )

    def _link(self, raw: np.ndarray) -> np.ndarray:
        return np.exp(raw) if self.loss == "poisson" else np.maximum(raw, 0.0)

    # ------------------------------------------------------------------- api
    def predict(self, data: Dataset, *, now: datetime | None = None) -> pl.DataFrame:
        """``customer_id, expected_clv`` (spend over the next ``horizon_days``) for every customer so far.

        Parameters
        ----------
        data
            The shop; purchases after ``now`` are ignored.
        now
            Reference time.  Default: the last purchase in ``data``.
        """
        feats, value = self._predict_frame(data, now)
        return feats.select("customer_id").with_columns(pl.Series("expected_clv", value, dtype=pl.Float64))

    def evaluate(self, data: Dataset, *, cutoff: datetime | None = None) -> dict[str, Any]:
        """Error on a window the model never saw, next to two naive forecasts.

        Parameters
        ----------
        data
            The shop, including the ``horizon_days`` after ``cutoff``.
        cutoff
            Features at ``cutoff``, actual spend in ``(cutoff, cutoff + horizon]``.  Default: the last
            purchase − ``horizon_days``.  Must be ≥ the fit cut-off + ``horizon_days``.

        Returns
        -------
        dict
            Over the ``n`` customers with history at ``cutoff`` (spend of customers first seen later is
            not forecast): ``mae`` and ``mae_naive`` (naive = their spend in the ``horizon_days`` before
            ``cutoff``), ``mae_run_rate`` (naive = lifetime spend per day × horizon), ``skill`` =
            1 − mae / mae_naive, ``rmse`` / ``rmse_naive`` / ``rmse_run_rate``, ``total_actual``,
            ``total_pred``, ``total_naive``, ``total_run_rate``,
            ``rel_error_total`` = (total_pred − total_actual) / total_actual and the same for both naive
            forecasts, ``top_decile_share`` (share of actual spend made by the top 10 % by prediction;
            ``…_naive`` ranked by last period's spend), ``cutoff``, ``horizon_days``.

        Notes
        -----
        MAE rewards forecasting the conditional *median*, which is 0 for most customers of a fashion
        shop (forecasting 0 for everyone beats every mean forecast on MAE), whereas ``expected_clv``
        is a mean; read MAE next to RMSE, the total error and the top-decile share.
        """
        frame, pred, cutoff = self._eval_frame(data, cutoff)
        actual = self._target(frame)
        naive = frame["spend_window"].to_numpy()
        tenure = np.maximum(frame["tenure_days"].to_numpy(), float(self.horizon_days))
        run_rate = frame["monetary"].to_numpy() / tenure * float(self.horizon_days)
        total = float(actual.sum())

        def rel(x: np.ndarray) -> float:
            return float((x.sum() - total) / total) if total > 0 else float("nan")

        def mae(x: np.ndarray) -> float:
            return float(np.abs(x - actual).mean()) if len(actual) else float("nan")

        def rmse(x: np.ndarray) -> float:
            return float(np.sqrt(np.mean((x - actual) ** 2))) if len(actual) else float("nan")

        m, m_naive = mae(pred), mae(naive)
        return {
            "mae": m,
            "mae_naive": m_naive,
            "mae_run_rate": mae(run_rate),
            "skill": float(1.0 - m / m_naive) if m_naive > 0 else float("nan"),
            "rmse": rmse(pred),
            "rmse_naive": rmse(naive),
            "rmse_run_rate": rmse(run_rate),
            "total_actual": total,
            "total_pred": float(pred.sum()),
            "total_naive": float(naive.sum()),
            "total_run_rate": float(run_rate.sum()),
            "rel_error_total": rel(pred),
            "rel_error_total_naive": rel(naive),
            "rel_error_total_run_rate": rel(run_rate),
            "top_decile_share": _top_share(pred, actual),
            "top_decile_share_naive": _top_share(naive, actual),
            "n": int(len(actual)),
            "cutoff": cutoff.isoformat(),
            "horizon_days": float(self.horizon_days),
        }

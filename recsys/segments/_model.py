"""The shared skeleton of the churn and lifetime-value models: stacked cut-off windows → boosted trees.

Why one skeleton: both models learn "what happens in the next ``horizon_days``" from the same
cut-off features (``_features``), validate the same hyperparameters, refuse to evaluate on a window
they were trained on, and persist the same way — the trees as plain arrays (``TreeEnsemble``) in an
``.npz`` loaded with ``allow_pickle=False`` plus a JSON manifest, never a pickle.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from recsys._io import save_arrays
from recsys.dataset import Dataset
from recsys.exceptions import BundleError, ConfigError, ModelFitError, NotFittedError
from recsys.models.base import atomic_dir, check_param
from recsys.ranking._trees import TreeEnsemble
from recsys.segments._features import FEATURES, customer_features, data_end, matrix, window_frame
from recsys.segments._lines import purchase_lines, resolve_now

__all__ = ["WindowModel"]

FORMAT_VERSION = 1
_MIN_WINDOW_CUSTOMERS = 10


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class WindowModel:
    """Base of ``ChurnModel`` and ``CLVModel`` (not used directly).

    Subclasses set ``kind`` and implement ``_estimator()`` (an unfitted scikit-learn
    HistGradientBoosting model), ``_target(frame)`` and ``_link(raw)`` (raw tree score → prediction).
    """

    kind: ClassVar[str] = ""
    output: ClassVar[str] = ""

    horizon_days: float
    n_windows: int
    max_iter: int
    learning_rate: float
    max_leaf_nodes: int
    min_samples_leaf: int
    l2_regularization: float
    random_state: int

    _PARAMS: ClassVar[tuple[str, ...]] = (
        "horizon_days", "n_windows", "max_iter", "learning_rate", "max_leaf_nodes", "min_samples_leaf",
        "l2_regularization", "random_state",
    )

    # ------------------------------------------------------------------ hooks
    def _estimator(self) -> Any:
        raise NotImplementedError

    def _target(self, frame: pl.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _link(self, raw: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _extra_params(self) -> tuple[str, ...]:
        return ()

    def _validate_extra(self) -> None:
        """Subclass-specific hyperparameter checks."""

    # ------------------------------------------------------------ validation
    def get_params(self) -> dict[str, Any]:
        """The constructor's hyperparameters as stored (sklearn style), for ``repr`` and the manifest."""
        return {name: getattr(self, name) for name in (*self._PARAMS, *self._extra_params())}

    def _validate_params(self) -> None:
        c = self
        check_param(c, "horizon_days", c.horizon_days, "a number in (0, 3650]",
                    _number(c.horizon_days) and 0 < c.horizon_days <= 3650)
        check_param(c, "n_windows", c.n_windows, "an int in [1, 52]",
                    _int(c.n_windows) and 1 <= c.n_windows <= 52)
        check_param(c, "max_iter", c.max_iter, "an int in [1, 5000]",
                    _int(c.max_iter) and 1 <= c.max_iter <= 5000)
        check_param(c, "learning_rate", c.learning_rate, "a number in (0, 1]",
                    _number(c.learning_rate) and 0 < c.learning_rate <= 1)
        check_param(c, "max_leaf_nodes", c.max_leaf_nodes, "an int ≥ 2",
                    _int(c.max_leaf_nodes) and c.max_leaf_nodes >= 2)
        check_param(c, "min_samples_leaf", c.min_samples_leaf, "an int ≥ 1",
                    _int(c.min_samples_leaf) and c.min_samples_leaf >= 1)
        check_param(c, "l2_regularization", c.l2_regularization, "a number ≥ 0",
                    _number(c.l2_regularization) and c.l2_regularization >= 0)
        check_param(c, "random_state", c.random_state, "an int", _int(c.random_state))
        self._validate_extra()

    def _check_fitted(self) -> None:
        if not hasattr(self, "trees_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit(data, cutoff=...) or load()."
            )

    # --------------------------------------------------------------- windows
    @property
    def _horizon(self) -> timedelta:
        return timedelta(days=self.horizon_days)

    def _check_window(self, lines: pl.DataFrame, cutoff: datetime, name: str) -> None:
        """The label window ``(cutoff, cutoff + horizon]`` must lie inside the data."""
        if lines.height == 0:
            raise ModelFitError(f"{type(self).__name__}: the data has no purchases")
        end = data_end(lines)
        if cutoff + self._horizon > end + timedelta(seconds=1):
            raise ConfigError(
                f"The '{name}' of {type(self).__name__} must leave a full label window of horizon_days="
                f"{self.horizon_days:g} before the last purchase ({end:%Y-%m-%d %H:%M}), i.e. be at most "
                f"{end - self._horizon:%Y-%m-%d %H:%M}. Got {cutoff:%Y-%m-%d %H:%M} instead."
            )

    def _default_cutoff(self, lines: pl.DataFrame) -> datetime:
        if lines.height == 0:
            raise ModelFitError(f"{type(self).__name__}: the data has no purchases")
        return data_end(lines) - self._horizon

    # ------------------------------------------------------------------- fit
    def fit(self, data: Dataset, *, cutoff: datetime | None = None) -> Self:
        """Learn from ``n_windows`` cut-offs ``cutoff, cutoff − horizon, …`` and the horizon after each.

        Parameters
        ----------
        data
            The shop (purchases are read).
        cutoff
            The latest training cut-off; its label window ``(cutoff, cutoff + horizon]`` must be inside
            the data.  Default: the last purchase − ``horizon_days`` (use every label available).

        Returns
        -------
        self
        """
        self._validate_params()
        lines = purchase_lines(data)
        cutoff = self._default_cutoff(lines) if cutoff is None else cutoff
        self._check_window(lines, cutoff, "cutoff")
        frames, used = [], []
        for k in range(self.n_windows):
            c = cutoff - k * self._horizon
            frame = window_frame(lines, c, self.horizon_days)
            if frame.height >= _MIN_WINDOW_CUSTOMERS:
                frames.append(frame)
                used.append(c)
        if not frames:
            raise ModelFitError(
                f"{type(self).__name__}: fewer than {_MIN_WINDOW_CUSTOMERS} customers have purchases before "
                f"the cut-off {cutoff:%Y-%m-%d}; not enough history to learn from"
            )
        train = pl.concat(frames)
        X = matrix(train)
        y = self._target(train)
        self._check_target(y)
        est = self._estimator()  # imports scikit-learn, loading its OpenMP runtime before the limit below
        # One OpenMP thread: a few thousand rows per window make thread start-up and spinning cost
        # more than it saves (measured 0.3 s single-threaded vs 11-20 s with 2 threads on a busy
        # 2-core machine); scoped so the caller's thread settings are untouched.
        with threadpool_limits(limits=1, user_api="openmp"):
            est.fit(X, y)
        self.trees_ = TreeEnsemble.from_sklearn(est)
        self.cutoff_ = cutoff
        self.windows_ = used
        self.n_train_ = int(train.height)
        self.target_mean_ = float(np.mean(y))
        return self

    def _check_target(self, y: np.ndarray) -> None:
        """Subclasses refuse degenerate targets (e.g. a single class)."""

    # --------------------------------------------------------------- predict
    def _predict_frame(self, data: Dataset, now: datetime | None) -> tuple[pl.DataFrame, np.ndarray]:
        self._check_fitted()
        lines = purchase_lines(data)
        return self.predict_lines(lines, resolve_now(lines, now))

    def predict_lines(self, lines: pl.DataFrame, now: datetime, *,
                      start: datetime | None = None) -> tuple[pl.DataFrame, np.ndarray]:
        """Features at ``now`` of the customers in ``lines`` (``purchase_lines`` output) and the model's
        output for each, in the features' row order.

        ``start``: the first purchase of the whole shop when ``lines`` hold only some customers (a block
        on a cluster), so ``start_lag_days`` — and the prediction — is what the whole shop would give.
        """
        self._check_fitted()
        feats = customer_features(lines, now, self.horizon_days, start)
        return feats, self._link(self.trees_.predict(matrix(feats)))

    def _eval_frame(self, data: Dataset, cutoff: datetime | None) -> tuple[pl.DataFrame, np.ndarray, datetime]:
        """Features at ``cutoff``, true labels after it, and predictions — refusing a seen window."""
        self._check_fitted()
        lines = purchase_lines(data)
        cutoff = self._default_cutoff(lines) if cutoff is None else cutoff
        self._check_window(lines, cutoff, "evaluation cutoff")
        if cutoff < self.cutoff_ + self._horizon:
            raise ConfigError(
                f"The 'cutoff' of {type(self).__name__}.evaluate must be at least the fit cut-off + horizon_days "
                f"({self.cutoff_ + self._horizon:%Y-%m-%d %H:%M}) so the model never saw its label window. "
                f"Got {cutoff:%Y-%m-%d %H:%M} instead."
            )
        frame = window_frame(lines, cutoff, self.horizon_days)
        X = matrix(frame)
        return frame, self._link(self.trees_.predict(X)), cutoff

    # ----------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write ``model.npz`` (trees as plain arrays) and ``manifest.json`` into the directory ``path``."""
        self._check_fitted()
        path = Path(path)
        with atomic_dir(path) as tmp:
            save_arrays(tmp / "model.npz", self.trees_.to_arrays())
            manifest = {
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "params": self.get_params(),
                "features": list(FEATURES),
                "cutoff": self.cutoff_.isoformat(),
                "windows": [w.isoformat() for w in self.windows_],
                "n_train": self.n_train_,
                "target_mean": self.target_mean_,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a model written by ``save`` (data only: ``allow_pickle=False``)."""
        path = Path(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            with np.load(path / "model.npz", allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, KeyError) as exc:
            raise BundleError(f"cannot read {cls.__name__} from {path}: {exc}") from None
        if manifest.get("kind") != cls.kind or manifest.get("format_version") != FORMAT_VERSION:
            raise BundleError(
                f"{path} holds kind={manifest.get('kind')!r} format {manifest.get('format_version')!r}; "
                f"expected kind={cls.kind!r} format {FORMAT_VERSION}"
            )
        if manifest.get("features") != list(FEATURES):
            raise BundleError(
                f"{path} was saved with features {manifest.get('features')}; this code uses {list(FEATURES)}"
            )
        model = cls(**manifest["params"])
        model.trees_ = TreeEnsemble.from_arrays(arrays)
        model.cutoff_ = datetime.fromisoformat(manifest["cutoff"])
        model.windows_ = [datetime.fromisoformat(w) for w in manifest["windows"]]
        model.n_train_ = int(manifest["n_train"])
        model.target_mean_ = float(manifest["target_mean"])
        return model

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

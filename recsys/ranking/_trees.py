"""A gradient-boosted tree ensemble as plain arrays, predicted with numpy.

Why not pickle the scikit-learn estimator: pickles run code on load and tie a bundle to one library
version (STYLE.md: data-only artefacts).  A fitted ``HistGradientBoosting*`` model is just trees; we
copy their nodes into flat arrays (feature, threshold, missing-goes-left, children, leaf value) and walk
all trees at once, one vectorised step per depth level.  The same arrays load anywhere numpy does, and
a test checks predictions equal scikit-learn's ``decision_function``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TreeEnsemble"]


class TreeEnsemble:
    """Flat node arrays of every tree; ``predict`` returns the raw (logit) score."""

    def __init__(
        self,
        *,
        feature: np.ndarray,
        threshold: np.ndarray,
        missing_left: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        value: np.ndarray,
        is_leaf: np.ndarray,
        roots: np.ndarray,
        baseline: float,
        max_depth: int,
    ) -> None:
        self.feature = feature
        self.threshold = threshold
        self.missing_left = missing_left
        self.left = left
        self.right = right
        self.value = value
        self.is_leaf = is_leaf
        self.roots = roots
        self.baseline = float(baseline)
        self.max_depth = int(max_depth)

    @classmethod
    def average(cls, members: list[TreeEnsemble]) -> TreeEnsemble:
        """One ensemble whose score is the mean of the members' scores (bagging).

        Trees are concatenated and every leaf value divided by the number of members, so prediction,
        storage and the compiled walkers stay exactly as for a single ensemble.
        """
        if not members:
            raise ValueError("average needs at least one ensemble")
        if len(members) == 1:
            return members[0]
        k = len(members)
        offsets = np.cumsum([0] + [len(m.feature) for m in members[:-1]])
        cat = np.concatenate
        return cls(
            feature=cat([m.feature for m in members]),
            threshold=cat([m.threshold for m in members]),
            missing_left=cat([m.missing_left for m in members]),
            left=cat([np.where(m.is_leaf, 0, m.left + o) for m, o in zip(members, offsets, strict=True)]),
            right=cat([np.where(m.is_leaf, 0, m.right + o) for m, o in zip(members, offsets, strict=True)]),
            value=cat([m.value / k for m in members]),
            is_leaf=cat([m.is_leaf for m in members]),
            roots=cat([m.roots + o for m, o in zip(members, offsets, strict=True)]),
            baseline=float(np.mean([m.baseline for m in members])),
            max_depth=max(m.max_depth for m in members),
        )

    @classmethod
    def from_sklearn(cls, model: object) -> TreeEnsemble:
        """Copy a fitted binary ``HistGradientBoostingClassifier`` or a ``HistGradientBoostingRegressor``."""
        predictors = getattr(model, "_predictors")
        parts, roots, offset, depth = [], [], 0, 0
        for iteration in predictors:
            if len(iteration) != 1:
                raise ValueError("only binary classification / regression ensembles are supported")
            nodes = iteration[0].nodes
            if np.any(nodes["is_categorical"]):
                raise ValueError("categorical splits are not supported")
            parts.append(nodes)
            roots.append(offset)
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
        nodes = np.concatenate(parts)
        starts = np.repeat(np.array(roots, dtype=np.int64), [len(p) for p in parts])
        return cls(
            feature=nodes["feature_idx"].astype(np.int32),
            threshold=nodes["num_threshold"].astype(np.float64),
            missing_left=nodes["missing_go_to_left"].astype(bool),
            left=(nodes["left"].astype(np.int64) + starts),
            right=(nodes["right"].astype(np.int64) + starts),
            value=nodes["value"].astype(np.float64),
            is_leaf=nodes["is_leaf"].astype(bool),
            roots=np.array(roots, dtype=np.int64),
            baseline=float(np.ravel(getattr(model, "_baseline_prediction"))[0]),
            max_depth=depth,
        )

    def _compiled(self) -> list[object] | None:
        """scikit-learn's compiled tree walkers rebuilt from our arrays (no pickle involved).

        Why: the per-request path scores ~200 candidates; numpy's level-by-level walk costs ~5 ms
        there, the compiled walker ~0.5 ms.  It is a private scikit-learn API, so any failure falls
        back to the numpy walk (same results; a test compares both with scikit-learn).
        """
        cached = getattr(self, "_predictors", False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        try:
            from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
            from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

            bounds = np.r_[self.roots, len(self.feature)]
            predictors = []
            empty = np.zeros((0, 8), dtype=np.uint32)
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                nodes = np.zeros(hi - lo, dtype=PREDICTOR_RECORD_DTYPE)
                nodes["value"] = self.value[lo:hi]
                nodes["feature_idx"] = self.feature[lo:hi]
                nodes["num_threshold"] = self.threshold[lo:hi]
                nodes["missing_go_to_left"] = self.missing_left[lo:hi]
                nodes["is_leaf"] = self.is_leaf[lo:hi]
                leaf = self.is_leaf[lo:hi]
                nodes["left"] = np.where(leaf, 0, self.left[lo:hi] - lo)
                nodes["right"] = np.where(leaf, 0, self.right[lo:hi] - lo)
                predictors.append(TreePredictor(nodes, empty, empty))
            self._predictors: list[object] | None = predictors
        except Exception:  # noqa: BLE001 - private API moved: use the numpy walk
            self._predictors = None
        return self._predictors

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw score per row: baseline + sum of the leaf values reached in every tree."""
        X = np.asarray(X, dtype=np.float64)
        n = X.shape[0]
        if n == 0:
            return np.zeros(0)
        compiled = self._compiled()
        if compiled is not None:
            Xc = np.ascontiguousarray(X, dtype=np.float64)
            f_idx = np.zeros(X.shape[1], dtype=np.uint32)
            cats = np.zeros((0, 8), dtype=np.uint32)
            total = np.full(n, self.baseline)
            for p in compiled:
                total += p.predict(Xc, cats, f_idx, 1)  # type: ignore[attr-defined]
            return total
        return self.predict_numpy(X)

    def predict_numpy(self, X: np.ndarray) -> np.ndarray:
        """The pure-numpy walk: every tree at once, one vectorised step per depth level."""
        X = np.asarray(X, dtype=np.float64)
        n = X.shape[0]
        if n == 0:
            return np.zeros(0)
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.max_depth):
            leaf = self.is_leaf[node]
            if leaf.all():
                break
            x = X[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(leaf, node, nxt)
        return self.baseline + self.value[node].sum(axis=1)

    def to_arrays(self, prefix: str = "tree_") -> dict[str, np.ndarray]:
        return {
            f"{prefix}feature": self.feature, f"{prefix}threshold": self.threshold,
            f"{prefix}missing_left": self.missing_left, f"{prefix}left": self.left, f"{prefix}right": self.right,
            f"{prefix}value": self.value, f"{prefix}is_leaf": self.is_leaf, f"{prefix}roots": self.roots,
            f"{prefix}meta": np.array([self.baseline, self.max_depth], dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "tree_") -> TreeEnsemble:
        meta = arrays[f"{prefix}meta"]
        return cls(
            feature=arrays[f"{prefix}feature"], threshold=arrays[f"{prefix}threshold"],
            missing_left=arrays[f"{prefix}missing_left"], left=arrays[f"{prefix}left"],
            right=arrays[f"{prefix}right"], value=arrays[f"{prefix}value"], is_leaf=arrays[f"{prefix}is_leaf"],
            roots=arrays[f"{prefix}roots"], baseline=float(meta[0]), max_depth=int(meta[1]),
        )

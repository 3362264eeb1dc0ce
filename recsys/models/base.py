"""The one contract every candidate generator honours (fit / recommend / partial_fit / save / load).

Why one base class: the ranker, the bundle, the service and the contract test suite treat every
generator the same way.  The rules, borrowed from scikit-learn and implicit:

* ``__init__`` only stores keyword hyperparameters verbatim (no validation, no logic);
* ``fit(data)`` validates hyperparameters, learns state in attributes ending in ``_`` and returns self;
* every other public method first checks fittedness and raises ``NotFittedError`` with a clear message;
* queries are batch-first: ``recommend(customer_ids, n)`` takes an array and returns ``(ids, scores)``
  arrays of shape ``(len(customer_ids), n)``; a scalar id returns 1-d arrays (the batch path with one
  row).  Rows with fewer than ``n`` candidates are padded with id ``""`` and score ``-inf``;
* unknown customers raise ``UnknownIdError`` unless ``on_unknown="empty"`` (an all-padding row);
* persistence is data only: ``.npz`` arrays loaded with ``allow_pickle=False`` plus a JSON manifest.
"""

from __future__ import annotations

import inspect
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, Self

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys._io import atomic_dir, save_arrays  # atomic_dir re-exported: it lived here before recsys._io
from recsys._time import newest
from recsys.dataset import Dataset
from recsys.exceptions import BundleError, ConfigError, NotFittedError, UnknownIdError
from recsys.idmap import IdMap
from recsys.models._packing import pack, unpack
from recsys.models._shared import SharedArrays

__all__ = [
    "Explained",
    "Recommendations",
    "Recommender",
    "OnUnknown",
    "PAD_ID",
    "check_param",
    "top_n",
    "interaction_matrix",
    "atomic_dir",
]

OnUnknown = Literal["raise", "empty"]
PAD_ID = ""
FORMAT_VERSION = 1


class Explained(NamedTuple):
    """``recommend_with_sources`` as arrays, one entry per (customer, suggestion), padding omitted.

    Why arrays as well as the frame: the per-request path asks for one customer and ~40 items, where
    building and unpacking a six-column polars frame cost more than the model itself.
    """

    row: np.ndarray  # position of the customer in the request
    rank: np.ndarray  # 1 = best
    item_id: np.ndarray  # object array of str
    score: np.ndarray  # float32
    source_item_id: np.ndarray  # object array of str
    source_us: np.ndarray  # int64 microseconds since the epoch (the schema's Datetime(us))


class Recommendations(NamedTuple):
    """``ids[b, r]`` is the r-th item for the b-th customer, ``scores`` the matching scores."""

    ids: np.ndarray
    scores: np.ndarray


def check_param(owner: object, name: str, value: Any, rule: str, ok: bool) -> None:
    """Raise a message in the scikit-learn shape: names the parameter, the rule and the value got."""
    if not ok:
        raise ConfigError(f"The '{name}' parameter of {type(owner).__name__} must be {rule}. Got {value!r} instead.")


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise indices and values of the ``n`` largest scores, sorted descending.

    Entries equal to ``-inf`` are candidates nobody proposed; they stay at the end and the caller pads
    them.  Ties are broken by index (stable) so results are deterministic.
    """
    scores = np.atleast_2d(scores)
    k = min(n, scores.shape[1])
    if k == 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64), np.zeros((scores.shape[0], 0), dtype=np.float32)
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        # argpartition picks arbitrarily among values tied with the k-th: take the smallest indices,
        # so any batch size (and the sparse per-request paths) give the same list
        picked = np.take_along_axis(scores, part, axis=1)
        kth = picked.min(axis=1, keepdims=True)
        tied = (scores == kth).sum(axis=1) > (picked == kth).sum(axis=1)
        if tied.any():
            rows = np.flatnonzero(tied)
            sub = scores[rows]
            above = sub > kth[rows]
            slots = k - above.sum(axis=1, keepdims=True)
            take = above | ((sub == kth[rows]) & (np.cumsum(sub == kth[rows], axis=1) <= slots))
            part[rows] = np.nonzero(take)[1].reshape(len(rows), k)
    else:
        part = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)


def purchase_entries(
    purchases: pl.DataFrame,
    customers: IdMap,
    items: IdMap,
    *,
    weight: Literal["binary", "count", "quantity"] = "count",
    half_life_days: float | None = None,
    reference_time: datetime | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(customer row, item column, weight)`` per purchase line of known customers and items.

    The entries of ``interaction_matrix`` before summing; fold-in adds them to a few rows without
    building a matrix as tall as the customer base.
    """
    frame = purchases.select("customer_id", "item_id", "ts", "quantity")
    rows = customers.index_series(frame["customer_id"])  # one join: no Python string per line
    cols = items.index_series(frame["item_id"])
    if weight == "quantity":
        w = frame["quantity"].to_numpy().astype(np.float32)
    else:
        w = np.ones(frame.height, dtype=np.float32)
    if half_life_days is not None and frame.height:
        ref = reference_time or newest(frame["ts"])
        age_days = ((ref - frame["ts"]).dt.total_seconds() / 86400.0).to_numpy()
        w = w * np.power(0.5, np.clip(age_days, 0, None) / half_life_days).astype(np.float32)
    keep = (rows >= 0) & (cols >= 0)
    return rows[keep], cols[keep], w[keep]


def interaction_matrix(
    purchases: pl.DataFrame,
    customers: IdMap,
    items: IdMap,
    *,
    weight: Literal["binary", "count", "quantity"] = "count",
    half_life_days: float | None = None,
    reference_time: datetime | None = None,
) -> sp.csr_matrix:
    """Customer × item CSR matrix of (optionally time-decayed) purchase weights.

    Rows whose customer or item is not in the maps are ignored (callers decide what is known).
    """
    rows, cols, w = purchase_entries(purchases, customers, items, weight=weight, half_life_days=half_life_days,
                                     reference_time=reference_time)
    m = sp.csr_matrix((w, (rows, cols)), shape=(len(customers), len(items)), dtype=np.float32)
    m.sum_duplicates()
    if weight == "binary":
        m.data[:] = 1.0
    return m


class Recommender(ABC):
    """Base of every candidate generator.  Subclasses implement ``_fit``, ``_recommend``, ``_state``,
    ``_set_state`` and may override ``partial_fit`` / ``forget``.
    """

    #: Reason type attached to this generator's candidates (see recsys.rules / explanations).
    reason: ClassVar[str] = "popular"
    #: Learned attributes that prove the model is fitted.
    _fitted_attr: ClassVar[str] = "item_ids_"
    #: True for customer-independent generators (popularity) that answer unknown customers anyway.
    serves_unknown: ClassVar[bool] = False
    #: Parameters for a fit that will be asked about a sample of the customers only (a ranker's label
    #: window, an evaluation): what can wait until a customer is asked about (``fit_generators(sample=True)``).
    window_params: ClassVar[dict[str, Any]] = {}

    # ---------------------------------------------------------------- params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind == p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        """The keyword-only constructor parameters as stored (sklearn style): for ``repr``, the manifest and
        re-creating the model with other values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------- fittedness
    @property
    def is_fitted(self) -> bool:
        """True once the model holds its learned state (``_fitted_attr`` is set)."""
        return hasattr(self, self._fitted_attr)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with a Dataset "
                "(or 'load' a saved one) before using it."
            )

    # ------------------------------------------------------------- contract
    def fit(self, data: Dataset) -> Self:
        """Learn from ``data`` (purchases before the cut-off only: the caller splits)."""
        self._validate_params()
        self._fit(data)
        return self

    def _validate_params(self) -> None:
        """Override to check hyperparameters (called by ``fit``, never by ``__init__``)."""

    @abstractmethod
    def _fit(self, data: Dataset) -> None: ...

    def recommend(
        self,
        customer_ids: str | Sequence[str] | np.ndarray,
        n: int = 10,
        *,
        exclude_bought: bool = False,
        on_unknown: OnUnknown = "raise",
    ) -> Recommendations:
        """Top-``n`` items per customer as ``(ids, scores)``; see the module docstring for shapes."""
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        scalar = isinstance(customer_ids, str)
        ids = np.array([customer_ids] if scalar else list(customer_ids), dtype=object)
        rows = self._customer_rows(ids)
        unknown = rows < 0
        if unknown.any() and on_unknown == "raise" and not self.serves_unknown:
            bad = ids[unknown]
            raise UnknownIdError(
                f"{type(self).__name__}: {int(unknown.sum())} unknown customer id(s), e.g. {bad[0]!r}; "
                "pass on_unknown='empty' to get empty rows instead"
            )
        item_idx, scores = self._recommend(rows, n, exclude_bought=exclude_bought)
        out_ids, out_scores = self._to_ids(item_idx, scores, n)
        if scalar:
            return Recommendations(out_ids[0], out_scores[0])
        return Recommendations(out_ids, out_scores)

    def recommend_frame(
        self, customer_ids: Sequence[str] | np.ndarray, n: int = 10, *, exclude_bought: bool = False
    ) -> pl.DataFrame:
        """``recommend`` for a batch as a long frame: ``customer_id, item_id, score (Float32), rank
        (Int32, 1 = best)``, one row per proposed item, padding and unknown customers left out.

        Why: the candidate layer asks every generator for tens of items for thousands of customers;
        ids gathered from the id maps' polars columns (``IdMap.take``) instead of object arrays of
        Python strings make this several times faster, and the rows are exactly ``recommend``'s.
        """
        self._check_fitted()
        check_param(self, "n", n, "an int in [1, inf)", isinstance(n, (int, np.integer)) and n >= 1)
        ids = np.array(list(customer_ids), dtype=object)
        item_idx, scores = self._recommend(self._customer_rows(ids), n, exclude_bought=exclude_bought)
        k = min(n, item_idx.shape[1])
        idx, sc = item_idx[:, :k], scores[:, :k]
        b, rank = np.nonzero((idx >= 0) & np.isfinite(sc))
        customers = pl.Series(ids.astype(str), dtype=pl.String)
        item_map: IdMap = getattr(self, "item_ids_")
        return pl.DataFrame({
            "customer_id": customers.gather(b),
            "item_id": item_map.take(idx[b, rank]),
            "score": pl.Series(sc[b, rank], dtype=pl.Float32),
            "rank": pl.Series(rank + 1, dtype=pl.Int32),
        })

    def knows(self, customer_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Which customers the model holds state for, folded-in ones included (bool per id).

        Why a method, not ``customer_ids_``: a model may keep customers folded in since the last merge
        apart from its id map (TIFU-KNN's overlay); asking the id map called them unknown until then."""
        self._check_fitted()
        return np.asarray(self._customer_rows(np.array(list(customer_ids), dtype=object)) >= 0)

    def _customer_rows(self, ids: np.ndarray) -> np.ndarray:
        """Internal row of each customer id, -1 if unknown.  Default: ``customer_ids_`` IdMap."""
        cmap: IdMap = getattr(self, "customer_ids_")
        return cmap.index(ids)

    @abstractmethod
    def _recommend(self, rows: np.ndarray, n: int, *, exclude_bought: bool) -> tuple[np.ndarray, np.ndarray]:
        """Item indices and scores (``(B, k)``, k ≤ n, -1 / -inf padded) for internal customer rows
        (-1 = unknown customer: return padding or a customer-independent answer)."""

    def _to_ids(self, item_idx: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        item_map: IdMap = getattr(self, "item_ids_")
        b = item_idx.shape[0]
        out_ids = np.full((b, n), PAD_ID, dtype=object)
        out_scores = np.full((b, n), -np.inf, dtype=np.float32)
        k = min(n, item_idx.shape[1])
        idx = item_idx[:, :k]
        valid = (idx >= 0) & np.isfinite(scores[:, :k])
        out_ids[:, :k][valid] = item_map.ids[idx[valid]]
        out_scores[:, :k][valid] = scores[:, :k][valid]
        return out_ids, out_scores

    def partial_fit(self, interactions: pl.DataFrame) -> Self:
        """Fold new interactions in without retraining global parameters (default: not supported)."""
        raise NotImplementedError(f"{type(self).__name__} does not support partial_fit")

    def forget(self, customer_ids: Sequence[str]) -> Self:
        """Remove customers' personal state (erasure); default: not supported."""
        raise NotImplementedError(f"{type(self).__name__} does not support forget")

    # ----------------------------------------------------------- persistence
    @abstractmethod
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Learned state as (numpy arrays, JSON-able metadata)."""

    @abstractmethod
    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None: ...

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to directory ``path`` atomically (arrays.npz + model.json)."""
        self._check_fitted()
        arrays, meta = self._state()
        return self.write_state(path, arrays, meta)

    def write_state(
        self, path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], *,
        shared: SharedArrays | None = None, share: Mapping[str, str] | None = None,
    ) -> Path:
        """``save`` with the state already built; arrays named in ``share`` (name → digest) go to the
        bundle's ``shared`` folder instead of ``arrays.npz`` (``recsys.models._shared``)."""
        share = dict(share or {}) if shared is not None else {}
        manifest: dict[str, Any] = {
            "class": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "meta": meta,
        }
        packed: dict[str, Any] = {}
        with atomic_dir(path) as tmp:
            if share:
                assert shared is not None
                for name, key in share.items():
                    packed[name] = shared.write(key, arrays[name])
                manifest["shared"] = share
                manifest["shared_dir"] = os.path.relpath(shared.root, path)
            own: dict[str, np.ndarray] = {}
            for name, array in arrays.items():
                if name not in share:
                    own[name], packed[name] = pack(array)
            manifest["packed"] = {name: spec for name, spec in packed.items() if spec is not None}
            save_arrays(tmp / "arrays.npz", own)
            (tmp / "model.json").write_text(json.dumps(manifest, indent=2, default=str))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, *, shared: SharedArrays | None = None) -> Self:
        """Load a model written by ``save``; data only (``allow_pickle=False``).  ``shared``: the bundle's
        shared arrays, read once for all its models (else read from the folder ``model.json`` names)."""
        path = Path(path)
        try:
            manifest = json.loads((path / "model.json").read_text())
            specs = manifest.get("packed") or {}  # integer arrays stored narrower (recsys.models._packing)
            with np.load(path / "arrays.npz", allow_pickle=False) as npz:
                arrays = {k: unpack(npz[k], specs.get(k)) for k in npz.files}
            refs = manifest.get("shared") or {}
            if refs:
                store = shared if shared is not None else SharedArrays(path / manifest["shared_dir"])
                arrays.update({name: store.read(key, specs.get(name)) for name, key in refs.items()})
        except (OSError, ValueError) as exc:
            raise BundleError(f"{path}: cannot load {cls.__name__}: {exc}") from None
        if manifest.get("class") != cls.__name__:
            raise BundleError(f"{path}: holds a {manifest.get('class')}, not a {cls.__name__}")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{path}: format version {manifest.get('format_version')} is not {FORMAT_VERSION}")
        model = cls(**manifest["params"])
        model._set_state(arrays, manifest["meta"])
        return model

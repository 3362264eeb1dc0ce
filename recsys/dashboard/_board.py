"""``Dashboard``: every panel's data from one served bundle, one store and the shop's configs, cached.

Why a class with a cache: the page asks for seven panels at once and a marketer reloads it; segments,
lifecycle and the complement map depend only on the model version (and the data), so they are computed
once per version; campaigns, KPI trends and experiments also read the store (consent, send log,
outcomes), so they are recomputed after ``ttl_seconds``.  The caller (serving/dashboard.py) passes the
bundle it serves per call, so a model swap shows on the next request.

Where the data comes from: a ``Dataset`` when the service is told one (the shop's customers carry the
consent flags campaigns need), else the purchase history inside the bundle with its catalogue and no
customer table — consent then comes from the store alone, and the overview says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from recsys.bundle import Bundle
from recsys.campaigns import Campaign, load_campaign
from recsys.dashboard._outcomes import campaigns_panel, experiments_panel, kpi_trends
from recsys.dashboard._panels import complements_panel, lifecycle_panel, segments_panel
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError, RecsysError
from recsys.models.category_complements import CategoryOverride, load_overrides
from recsys.rules import PlacementRules
from recsys.store import Store

__all__ = ["Dashboard", "PANELS", "Panel", "dataset_from_bundle"]

Panel = Literal["overview", "segments", "lifecycle", "campaigns", "kpis", "experiments", "complements"]
PANELS: Final[tuple[str, ...]] = ("overview", "segments", "lifecycle", "campaigns", "kpis", "experiments",
                                  "complements")
_STORE_PANELS: Final[frozenset[str]] = frozenset({"campaigns", "kpis", "experiments"})


def dataset_from_bundle(bundle: Bundle, *, source: str = "bundle") -> Dataset:
    """The bundle's own purchase history and catalogue as a ``Dataset`` (no customers: consent from the
    store only, ``consent_default`` denied)."""
    history = bundle.hybrid.history.frame
    return Dataset(history.with_columns(pl.lit("purchase").alias("event")), bundle.catalogue, source=source)


class Dashboard:
    """The dashboard's panels (``PANELS``) as JSON-ready dicts.

    Parameters
    ----------
    campaigns
        Campaign YAML files (or loaded ``Campaign`` objects) the campaigns panel plans; a file that does
        not load is shown with its error, not dropped.
    overrides
        The category-complement overrides file (``configs/complements_overrides.yaml``), or ``None``.
    data
        Returns the shop's ``Dataset``, or ``None`` to use the bundle's history (called once, lazily).
    ttl_seconds
        How long store-dependent panels (campaigns, KPI trends, experiments) are reused.
    window_days, flow_days, preview
        KPI attribution window, lifecycle-flow period, customers per campaign preview.
    """

    def __init__(self, *, campaigns: Sequence[str | Path | Campaign] = (), overrides: str | Path | None = None,
                 data: Callable[[], Dataset | None] | None = None, ttl_seconds: float = 30.0,
                 window_days: float = 14.0, flow_days: float = 30.0, preview: int = 3) -> None:
        self.campaigns = list(campaigns)
        self.overrides = overrides
        self.data = data
        self.ttl_seconds = ttl_seconds
        self.window_days = window_days
        self.flow_days = flow_days
        self.preview = preview
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str | None], tuple[float, dict[str, Any]]] = {}
        self._dataset: Dataset | None = None
        self._dataset_loaded = False

    # ------------------------------------------------------------------ inputs
    def _shop(self, bundle: Bundle, version: str | None) -> tuple[Dataset, bool]:
        """``(data, from_dataset)``: the configured data set, or the bundle's history."""
        if not self._dataset_loaded:
            self._dataset = self.data() if self.data is not None else None
            self._dataset_loaded = True
        if self._dataset is not None:
            return self._dataset, True
        return dataset_from_bundle(bundle, source=f"bundle {version or ''}".strip()), False

    def _campaign_objects(self) -> tuple[list[Campaign], list[dict[str, Any]]]:
        loaded, broken = [], []
        for c in self.campaigns:
            if isinstance(c, Campaign):
                loaded.append(c)
                continue
            try:
                loaded.append(load_campaign(c))
            except RecsysError as exc:
                broken.append({"name": Path(c).stem, "error": str(exc)})
        return loaded, broken

    def _overrides(self, model: Any = None) -> tuple[Mapping[str, CategoryOverride] | None, str | None]:
        """The overrides the served model was trained with (its ``overrides`` parameter, when that file is
        readable here), else the dashboard's configured file: the map shown is then the one in effect."""
        trained = getattr(model, "overrides", None)
        source = trained if isinstance(trained, (str, Path)) and Path(trained).is_file() else self.overrides
        if source is None:
            return None, None
        parsed, _ = load_overrides(source)
        return parsed, str(source)

    # ------------------------------------------------------------------ panels
    def panel(self, name: str, *, bundle: Bundle, model_version: str | None, store: Store | None,
              placements: Mapping[str, PlacementRules]) -> dict[str, Any]:
        """One panel's data (see the module docstring for what is cached how long).

        Raises
        ------
        ConfigError
            ``name`` is not one of ``PANELS``.
        """
        if name not in PANELS:
            raise ConfigError(f"The 'panel' parameter must be one of {', '.join(PANELS)}. Got {name!r} instead.")
        key = (name, model_version)
        with self._lock:  # one computation at a time: a reload of the page waits for the first one's result
            hit = self._cache.get(key)
            if hit is not None and (name not in _STORE_PANELS or time.monotonic() - hit[0] < self.ttl_seconds):
                return hit[1]
            t0 = time.perf_counter()
            body = self._compute(name, bundle=bundle, model_version=model_version, store=store,
                                 placements=placements)
            body = {"panel": name, "model_version": model_version,
                    "computed_at": datetime.now().isoformat(timespec="seconds"),
                    "seconds": round(time.perf_counter() - t0, 3), **body}
            self._cache[key] = (time.monotonic(), body)
            return body

    def _compute(self, name: str, *, bundle: Bundle, model_version: str | None, store: Store | None,
                 placements: Mapping[str, PlacementRules]) -> dict[str, Any]:
        if name == "kpis":
            return kpi_trends(store, window_days=self.window_days) if store is not None else {"series": []}
        if name == "experiments":
            return experiments_panel(store) if store is not None else {"experiments": [], "tests": {}}
        if name == "complements":
            model = bundle.hybrid.generators.get("category_complements")
            overrides, source = self._overrides(model)
            return complements_panel(model, overrides=overrides, overrides_source=source)
        data, from_dataset = self._shop(bundle, model_version)
        if name == "overview":
            first, last = data.date_range
            return {"data_source": data.source, "from_dataset": from_dataset,
                    "consent": "data set, overridden by the store" if from_dataset else
                    "store only (no data set configured: customers without a stored consent are not emailed)",
                    "customers": int(data.purchases["customer_id"].n_unique()),
                    "items": int(data.items.height), "purchases": int(data.purchases.height),
                    "first_purchase": first.isoformat() if first else None,
                    "last_purchase": last.isoformat() if last else None,
                    "campaigns": len(self.campaigns), "overrides": str(self.overrides) if self.overrides else None}
        if name == "segments":
            return segments_panel(data)
        if name == "lifecycle":
            return lifecycle_panel(data, flow_days=self.flow_days)
        # campaigns: only purchases the bundle already knows, so planning never folds data into the
        # bundle being served (plan_campaign folds newer purchases into the bundle it is given)
        mark = bundle.hybrid.history.last_ts or bundle.reference_time
        known = data.with_interactions(data.interactions.filter(pl.col("ts") <= mark)) if from_dataset else data
        loaded, broken = self._campaign_objects()
        body = campaigns_panel(loaded, bundle, known, placements=placements, store=store,
                               model_version=model_version, preview=self.preview)
        body["campaigns"] += broken
        return body

"""Typed training configuration (``configs/train.yaml``): every CLI flag can also come from here.

Why pydantic with ``extra="forbid"``: a misspelt hyperparameter in YAML must fail loudly, naming the
file and the field, instead of silently training with the default.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recsys._yaml import read_yaml, validation_message
from recsys.exceptions import ConfigError

__all__ = ["GeneratorSpec", "RankerSpec", "SplitSpec", "TrainConfig", "load_train_config", "GENERATORS"]

#: name → "module:Class" of every candidate generator the pipeline knows.
GENERATORS: dict[str, str] = {
    "buy_again": "recsys.models.buy_again:BuyAgain",
    "copurchase": "recsys.models.copurchase:CoPurchase",
    "category_complements": "recsys.models.category_complements:CategoryComplements",
    "category_affinity": "recsys.models.category_affinity:CategoryAffinity",
    "als": "recsys.models.als:ALS",
    "bpr": "recsys.models.bpr:BPR",
    "item_knn": "recsys.models.item_knn:ItemKNN",
    "popularity": "recsys.models.popularity:Popularity",
    "tifu_knn": "recsys.models.tifu_knn:TIFUKNN",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratorSpec(_Strict):
    """One entry of the ``generators:`` section of the training YAML."""

    enabled: bool = True
    #: Candidates this generator proposes per customer to the ranker.
    candidates: int = Field(50, ge=0, le=1000)
    #: Candidates for the cross-sell (never-bought items) ranking; default: ``candidates``.  Items a
    #: customer never bought are a long tail: on Complete Journey a deeper pool holds twice the new
    #: purchases, and the cross-sell ranker turns that into a better top 12.
    new_candidates: int | None = Field(None, ge=0, le=1000)
    params: dict[str, Any] = Field(default_factory=dict)


class RankerSpec(_Strict):
    """The ``ranker:`` section of the training YAML."""

    kind: Literal["gbdt", "rrf"] = "gbdt"
    max_iter: int = Field(80, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    max_leaf_nodes: int = Field(31, ge=2)
    negatives_per_positive: float | None = 30.0
    #: Cap on label-window customers used to train the ranker (time bound on big shops).
    max_customers: int | None = 20000
    #: Label windows the ranker trains on, stacked back from the test cut-off (each
    #: ``split.validation_days`` long, generators refitted before each).  One window learns that
    #: window's quirks (on Complete Journey: a pre-holiday fortnight); two give twice the positives
    #: and a ranker that holds up on a different period, for one more generator fit.
    windows: int = Field(1, ge=1, le=8)
    #: Rankers averaged, each on its own sample of negatives (bagging); ``new_bags`` for the
    #: cross-sell ranker (default: ``bags``).  Every bag adds trees to score per request.
    bags: int = Field(1, ge=1, le=32)
    new_bags: int | None = Field(None, ge=1, le=32)
    #: Boosting library and loss of the ranker (``recsys.ranking._fit.fit_ranker``); ``lambdarank``
    #: (LightGBM only) ranks each customer's candidates against each other instead of predicting
    #: bought / not bought.  On Complete Journey neither LightGBM variant beat the default: see _fit.py.
    backend: Literal["sklearn", "lightgbm"] = "sklearn"
    objective: Literal["binary", "lambdarank"] = "binary"
    #: Cascade scoring (``recsys.ranking._cascade``): the first ``cascade_trees`` trees score every
    #: candidate, the rest only each customer's ``cascade_keep`` best.  Unset: every tree for every
    #: candidate (exact).  Saved in the bundle; the service and batch jobs score the same way.
    cascade_trees: int | None = Field(None, ge=1)
    cascade_keep: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _lambdarank_needs_lightgbm(self) -> RankerSpec:
        if self.objective == "lambdarank" and self.backend != "lightgbm":
            raise ValueError(
                f"ranker.objective 'lambdarank' needs ranker.backend 'lightgbm', not {self.backend!r}")
        return self


class SplitSpec(_Strict):
    """The ``split:`` section of the training YAML (an explicit ``cutoff`` wins over ``holdout_days``)."""

    holdout_days: float | None = 14.0
    cutoff: date | None = None
    #: The ranker trains on this window just before the test cut-off (as long as the test window, so
    #: the ranker learns the same task it is judged on).
    validation_days: float = Field(14.0, gt=0)

    @model_validator(mode="after")
    def _one_cutoff(self) -> SplitSpec:
        if self.cutoff is not None and self.holdout_days is not None:
            object.__setattr__(self, "holdout_days", None)  # an explicit cutoff wins over the default
        if self.cutoff is None and self.holdout_days is None:
            raise ValueError("one of split.cutoff or split.holdout_days is required")
        return self


class TrainConfig(_Strict):
    """The training YAML as a whole (``configs/train.yaml``): data set, split, generators, ranker."""

    dataset: str = "synthetic"
    data_path: str | None = None
    lenient: bool = False
    seed: int = 0
    k: int = Field(12, ge=1, le=100)
    split: SplitSpec = SplitSpec()
    generators: dict[str, GeneratorSpec] = Field(
        default_factory=lambda: {name: GeneratorSpec() for name in GENERATORS}
    )
    ranker: RankerSpec = RankerSpec()
    #: Baselines evaluated with the same code on the same split, side by side.
    baselines: list[str] = Field(
        default_factory=lambda: ["popularity_global", "popularity_decayed", "buy_again_then_popular", "tifu_knn",
                                 "item_knn", "als"]
    )
    #: Folder for results that depend only on the data and are worth keeping between runs (the
    #: TIFU-KNN baseline's parameter search); ``None``: kept for the process only.
    cache_dir: str | None = None
    #: The holdout metric promotion compares ("<variant>.<metric>", e.g. "all.map").
    promote_metric: str = "all.map"
    #: Customers ranked at once when evaluating or writing lists: bounds memory (~200 candidates ×
    #: ~45 features per customer) independently of the shop's size.
    batch_customers: int = Field(10_000, ge=1)

    @model_validator(mode="after")
    def _known_generators(self) -> TrainConfig:
        unknown = sorted(set(self.generators) - set(GENERATORS))
        if unknown:
            raise ValueError(f"unknown generator(s) {unknown}; known: {sorted(GENERATORS)}")
        if "popularity" not in self.generators or not self.generators["popularity"].enabled:
            raise ValueError("the popularity generator is required (it is the cold-start fallback)")
        return self

    def enabled_generators(self) -> dict[str, GeneratorSpec]:
        """The generator specs with ``enabled: true``, in configured order."""
        return {k: v for k, v in self.generators.items() if v.enabled}


def load_train_config(path: str | Path | None, **overrides: Any) -> TrainConfig:
    """Read ``path`` (or defaults) and apply CLI ``overrides`` (None values are ignored)."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(path, "training config") or {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("holdout_days", "cutoff", "validation_days"):
            split = dict(raw.get("split") or {})
            if key == "cutoff":
                split["holdout_days"] = None
            if key == "holdout_days":
                split["cutoff"] = None
            split[key] = value
            raw["split"] = split
        else:
            raw[key] = value
    if path is not None:
        _resolve_overrides(raw, Path(path))
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(validation_message(path or "training config", "training config", exc)) from None


def _resolve_overrides(raw: dict[str, Any], path: Path) -> None:
    """A relative ``category_complements.params.overrides`` file is relative to the config file's folder:
    ``configs/train.yaml`` names ``complements_overrides.yaml`` and works from any working directory."""
    spec = (raw.get("generators") or {}).get("category_complements")
    params = spec.get("params") if isinstance(spec, dict) else None
    if not isinstance(params, dict):
        return
    file = params.get("overrides")
    if isinstance(file, str) and not Path(file).is_absolute():
        params["overrides"] = str((path.parent / file).resolve())

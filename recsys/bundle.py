"""``Bundle``: one trained version — every component, the ranker, history, catalogue and a manifest.

Why one artefact: the service, batch jobs and reports must use *exactly* the components that were
evaluated together.  The layout is data only (JSON, parquet, npz), so a bundle loads without the
training data and without unpickling code:

    manifest.json            config, data fingerprint, metrics, versions, git SHA, timings
    catalogue.parquet        items (category, price, stock) at training time
    history.parquet          purchases of known customers (features, rules, explanations, fold-in)
    stats_items.parquet      item statistics for ranker features
    stats_categories.parquet
    ranker.npz               the tree ensemble (absent for the untrained blend)
    ranker_new.npz           the cross-sell ranker for new-to-customer lists
    generators/<name>/       each generator's own save()
    shared/<digest>.npy      arrays two or more generators hold identically, stored once
    report/*.parquet         evaluation tables (metrics, segments, precision/recall curve)
"""

from __future__ import annotations

import importlib
import json
import logging
import platform
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from recsys._io import save_arrays
from recsys.config import GENERATORS
from recsys.exceptions import BundleError
from recsys.history import PurchaseHistory
from recsys.models._shared import SharedArrays, plan_sharing
from recsys.models.base import Recommender, atomic_dir
from recsys.ranking._features import ItemStats
from recsys.ranking._cascade import Cascade
from recsys.ranking._trees import TreeEnsemble
from recsys.ranking.hybrid import HybridRecommender

if TYPE_CHECKING:
    from recsys.registry import ModelVersion, Registry

__all__ = ["Bundle", "generator_class", "library_versions", "git_sha", "load_bundle"]

log = logging.getLogger(__name__)

BUNDLE_FORMAT = 1


def generator_class(name: str) -> type[Recommender]:
    """The ``Recommender`` class registered under ``name`` in ``GENERATORS`` (imported on demand);
    an unknown name is a ``BundleError`` listing the known ones."""
    try:
        module, cls = GENERATORS[name].split(":")
    except KeyError:
        raise BundleError(f"unknown generator {name!r}; known: {sorted(GENERATORS)}") from None
    found: type[Recommender] = getattr(importlib.import_module(module), cls)
    return found


def library_versions() -> dict[str, str]:
    """Python's and the main libraries' versions, recorded in the manifest so a bundle says what made it;
    a library that is not installed is left out."""
    out = {"python": platform.python_version()}
    for lib in ("numpy", "scipy", "polars", "sklearn", "implicit", "bentoml"):
        try:
            out[lib] = importlib.import_module(lib).__version__
        except Exception:  # noqa: BLE001 - a missing optional library is just not recorded
            continue
    return out


def git_sha() -> str | None:
    """The checkout's commit, recorded in the manifest for provenance; ``None`` outside a git checkout."""
    try:
        root = Path(__file__).resolve().parents[1]
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip() or None
    except Exception:  # noqa: BLE001 - not a git checkout (installed package): no SHA
        return None


class Bundle:
    """A trained ``HybridRecommender`` with its catalogue and manifest."""

    def __init__(
        self,
        hybrid: HybridRecommender,
        catalogue: pl.DataFrame,
        manifest: dict[str, Any],
        tables: dict[str, pl.DataFrame] | None = None,
    ) -> None:
        self.hybrid = hybrid
        self.catalogue = catalogue
        self.manifest = manifest
        #: Evaluation tables the report draws (metrics, segments, curve), saved under ``report/``.
        self.tables = dict(tables or {})

    @property
    def reference_time(self) -> datetime:
        """The newest training purchase (``HybridRecommender.reference_time``)."""
        return self.hybrid.reference_time

    def save(self, path: str | Path) -> Path:
        """Write atomically to ``path`` (a directory)."""
        with atomic_dir(path) as tmp:
            self.write_into(tmp)
        return Path(path)

    def write_into(self, folder: Path) -> None:
        """Write the bundle files into an existing (empty) folder, e.g. a BentoML model directory."""
        h = self.hybrid
        # Arrays two generators hold identically (customer ids, purchase indices) are written once
        # (recsys/models/_shared.py); the states are built twice so only one is in memory at a time.
        plan = plan_sharing((name, gen._state()[0]) for name, gen in h.generators.items())
        shared = SharedArrays(folder / "shared")
        for name, gen in h.generators.items():
            arrays, meta = gen._state()
            gen.write_state(folder / "generators" / name, arrays, meta, shared=shared, share=plan[name])
        self.catalogue.write_parquet(folder / "catalogue.parquet")
        h.history.save(folder / "history.parquet")
        h.stats.items_.write_parquet(folder / "stats_items.parquet")
        h.stats.categories_.write_parquet(folder / "stats_categories.parquet")
        if h.ranker is not None:
            save_arrays(folder / "ranker.npz", h.ranker.to_arrays())
        if h.ranker_new is not None:
            save_arrays(folder / "ranker_new.npz", h.ranker_new.to_arrays())
        if self.tables:
            (folder / "report").mkdir()
            for name, table in self.tables.items():
                table.write_parquet(folder / "report" / f"{name}.parquet")
        manifest = {
            **self.manifest,
            "bundle_format": BUNDLE_FORMAT,
            "generators": list(h.generators),
            "candidates": h.candidates,
            "new_candidates": h.new_candidates,
            "cascade": h.cascade.to_json() if h.cascade is not None else None,
            "features": h.features,
            "reference_time": h.reference_time.isoformat(),
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        """Load a bundle directory; ``BundleError`` names what is missing or corrupt."""
        path = Path(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise BundleError(f"{path}: no readable manifest.json ({exc})") from None
        if manifest.get("bundle_format") != BUNDLE_FORMAT:
            raise BundleError(f"{path}: bundle format {manifest.get('bundle_format')} is not {BUNDLE_FORMAT}")
        try:
            shared = SharedArrays(path / "shared")
            generators = {
                name: generator_class(name).load(path / "generators" / name, shared=shared)
                for name in manifest["generators"]
            }
            catalogue = pl.read_parquet(path / "catalogue.parquet")
            history = PurchaseHistory.load(path / "history.parquet")
            stats = ItemStats.from_state(
                pl.read_parquet(path / "stats_items.parquet"),
                pl.read_parquet(path / "stats_categories.parquet"),
                datetime.fromisoformat(manifest["reference_time"]),
            )
            ranker, ranker_new = (_load_trees(path / name) for name in ("ranker.npz", "ranker_new.npz"))
        except BundleError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure here means a corrupt bundle
            raise BundleError(f"{path}: corrupt bundle: {type(exc).__name__}: {exc}") from None
        hybrid = HybridRecommender(
            generators, stats, history, candidates=manifest["candidates"], ranker=ranker, ranker_new=ranker_new,
            new_candidates=manifest.get("new_candidates"), cascade=Cascade.from_json(manifest.get("cascade")),
        )
        tables = {f.stem: pl.read_parquet(f) for f in sorted((path / "report").glob("*.parquet"))}
        return cls(hybrid, catalogue, manifest, tables)


def _load_trees(path: Path) -> TreeEnsemble | None:
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as npz:
        return TreeEnsemble.from_arrays({k: npz[k] for k in npz.files})


def load_bundle(tag: str = "promoted", *, registry: Registry | None = None) -> tuple[ModelVersion, Bundle]:
    """The stored version ``tag`` names and its loaded bundle: what every batch job starts with.

    Parameters
    ----------
    tag
        ``promoted``, ``latest``, ``crosssell:<version>`` or ``<version>`` (``Registry.resolve``).
    registry
        Where the versions are stored; default ``Registry()`` (BentoML's home).

    Raises
    ------
    BundleError
        No such version, nothing promoted yet, or a missing or corrupt bundle.
    """
    from recsys.registry import Registry

    t0 = time.perf_counter()
    version = (registry or Registry()).resolve(tag)
    bundle = Bundle.load(version.path)
    log.info("loaded %s in %.2fs", version.tag, time.perf_counter() - t0)
    return version, bundle

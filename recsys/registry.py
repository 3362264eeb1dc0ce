"""The model registry: versioned bundles in the BentoML model store, plus which one is promoted.

Why BentoML's store: the service loads ``crosssell:<version>`` from the same store the training
pipeline writes, with no second artefact system to keep in sync.  BentoML has no notion of
"promoted", so promotion is a tiny JSON file beside the store (``<BENTOML_HOME>/crosssell-registry.json``)
holding the promoted tag and its history, written atomically; the service watches it to swap models.

Promotion is explicit and guarded: a candidate whose holdout metric is worse than the current
promoted version's is refused unless the caller forces it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recsys._io import atomic_write_text
from recsys.exceptions import BundleError, PromotionRefusedError

__all__ = ["MODEL_NAME", "ModelVersion", "Registry", "restamp_files"]

log = logging.getLogger(__name__)

MODEL_NAME = "crosssell"
_VERSION_RE = re.compile(r"^[a-z0-9]([-._a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class ModelVersion:
    """One saved bundle in the model store: its tag, creation time, folder and metadata."""

    tag: str
    created: datetime
    path: Path
    metadata: dict[str, Any]

    @property
    def version(self) -> str:
        """The tag's version part (``crosssell:v1`` → ``v1``)."""
        return self.tag.split(":", 1)[1]

    def metric(self, name: str) -> float | None:
        """A headline metric recorded at training (e.g. ``all.map``), or ``None`` when absent."""
        value = self.metadata.get("headline", {}).get(name)
        return None if value is None else float(value)


def _bentoml() -> Any:
    import bentoml  # lazy: importing bentoml costs ~1 s and reads its home at import

    return bentoml


class Registry:
    """Save, list, promote and roll back bundles.

    Parameters
    ----------
    home
        BentoML home; ``None`` uses BentoML's own resolution (``$BENTOML_HOME`` or ``~/bentoml``).
        A given home is used through its own ``ModelStore`` (``<home>/models``), handed to every
        ``bentoml.models`` call: the process environment and BentoML's global container are left
        alone, so two registries with different homes can live in one process.
    """

    def __init__(self, home: str | Path | None = None) -> None:
        self._home = Path(home) if home is not None else None
        self._model_store: Any = None

    def _store_kw(self) -> dict[str, Any]:
        """``{"_model_store": ...}`` for a given home (BentoML's injectable store argument), else ``{}``."""
        if self._home is None:
            return {}
        if self._model_store is None:
            from bentoml._internal.models.model import ModelStore

            (self._home / "models").mkdir(parents=True, exist_ok=True)
            self._model_store = ModelStore(self._home / "models")
        return {"_model_store": self._model_store}

    @property
    def home(self) -> Path:
        """The BentoML home in use (BentoML's own resolution when none was given, looked up on first use)."""
        if self._home is None:
            from bentoml._internal.configuration.containers import BentoMLContainer

            self._home = Path(BentoMLContainer.bentoml_home.get())
        return self._home

    @property
    def state_file(self) -> Path:
        """The JSON file in the BentoML home holding the promoted tag and the promotion history."""
        return self.home / f"{MODEL_NAME}-registry.json"

    # ------------------------------------------------------------------ save
    def save(self, write: Callable[[Path], None], *, metadata: dict[str, Any], version: str | None = None) -> str:
        """Create a new version: ``write(path)`` fills the model directory; returns the tag."""
        bentoml = _bentoml()
        version = version or datetime.now(timezone.utc).strftime("v%Y%m%d-%H%M%S-%f")
        if not _VERSION_RE.match(version):
            raise BundleError(f"invalid version {version!r}: use lowercase letters, digits, '-', '_' and '.'")
        labels = {"kind": "crosssell-bundle"}
        with bentoml.models.create(f"{MODEL_NAME}:{version}", metadata=_jsonable(metadata), labels=labels,
                                   **self._store_kw()) as m:
            write(Path(m.path))
            # BentoML copies the finished folder into the store file by file: a kill during that copy
            # leaves a partial version there.  The sizes of what was written travel in the metadata,
            # so ``versions`` can tell a complete version from a half-copied one.
            m.info.metadata[_FILES_KEY] = _file_sizes(Path(m.path))
        return f"{MODEL_NAME}:{version}"

    # ------------------------------------------------------------------ read
    def versions(self) -> list[ModelVersion]:
        """All versions, newest first."""
        bentoml = _bentoml()
        try:
            models = bentoml.models.list(MODEL_NAME, **self._store_kw())
        except bentoml.exceptions.NotFound:  # an empty store: no versions, not an error
            return []
        out = []
        for m in models:
            version = ModelVersion(str(m.tag), m.info.creation_time, Path(m.path), dict(m.info.metadata))
            problem = _incomplete(version)
            if problem:
                log.warning("skipping %s: %s (a save killed half-way?)", version.tag, problem)
                continue
            out.append(version)
        return sorted(out, key=lambda v: v.created, reverse=True)

    def get(self, tag: str) -> ModelVersion:
        """The version ``tag`` (the ``crosssell:`` prefix may be omitted); a missing or half-written version
        is a ``BundleError``."""
        bentoml = _bentoml()
        if ":" not in tag:
            tag = f"{MODEL_NAME}:{tag}"
        try:
            m = bentoml.models.get(tag, **self._store_kw())
        except bentoml.exceptions.NotFound:
            known = ", ".join(v.tag for v in self.versions()[:5]) or "none"
            raise BundleError(f"model {tag} not found in {self.home} (recent: {known})") from None
        version = ModelVersion(str(m.tag), m.info.creation_time, Path(m.path), dict(m.info.metadata))
        problem = _incomplete(version)
        if problem:
            raise BundleError(f"model {version.tag} is incomplete: {problem} (a save killed half-way?)")
        return version

    def resolve(self, tag: str) -> ModelVersion:
        """``promoted`` / ``latest`` / ``crosssell:<version>`` / ``<version>`` → a stored version."""
        if tag == "promoted":
            promoted = self.promoted()
            if promoted is None:
                raise BundleError("no model is promoted yet: run `recsys models promote TAG`")
            return promoted
        if tag in ("latest", f"{MODEL_NAME}:latest"):
            versions = self.versions()
            if not versions:
                raise BundleError(f"no {MODEL_NAME} models in {self.home}: run `recsys train` first")
            return versions[0]
        return self.get(tag)

    # ------------------------------------------------------------- promotion
    def _state(self) -> dict[str, Any]:
        if not self.state_file.exists():
            return {"promoted": None, "history": []}
        return json.loads(self.state_file.read_text())

    def _write_state(self, state: dict[str, Any]) -> None:
        atomic_write_text(self.state_file, json.dumps(state, indent=2), mode=None)  # (private, as before)

    def promoted(self) -> ModelVersion | None:
        """The promoted version, or ``None`` when nothing has been promoted yet."""
        tag = self._state()["promoted"]
        return self.get(tag) if tag else None

    def promote(self, tag: str, *, metric: str, force: bool = False) -> ModelVersion:
        """Mark ``tag`` as the serving version if its holdout ``metric`` is not worse than the current one."""
        candidate = self.resolve(tag)
        current = self.promoted()
        if current is not None and current.tag != candidate.tag and not force:
            new, old = candidate.metric(metric), current.metric(metric)
            if new is None:
                why = ("was trained with --no-eval (not evaluated)" if candidate.metadata.get("evaluated") is False
                       else f"has no holdout {metric}")
                if old is not None or current.metadata.get("evaluated") is not False:
                    raise PromotionRefusedError(
                        f"refusing to promote {candidate.tag}: it {why} and the promoted {current.tag} was "
                        "evaluated; pass --force to promote anyway")
            # (new is None here only when old is too: the branch above refused the other case)
            if old is not None and new is not None and new < old:
                raise PromotionRefusedError(
                    f"refusing to promote {candidate.tag}: holdout {metric} {new:.4f} is worse than the promoted "
                    f"{current.tag}'s {old:.4f}; pass --force to promote anyway"
                )
        state = self._state()
        if state["promoted"] != candidate.tag:
            if state["promoted"]:
                state["history"].append(state["promoted"])
            state["promoted"] = candidate.tag
            self._write_state(state)
        return candidate

    def rollback(self) -> ModelVersion:
        """Re-promote the previously promoted version."""
        state = self._state()
        if not state["history"]:
            raise PromotionRefusedError("nothing to roll back to: no earlier promoted version")
        state["promoted"] = state["history"].pop()
        self._write_state(state)
        return self.get(state["promoted"])


_FILES_KEY = "files"


def _file_sizes(folder: Path) -> dict[str, int]:
    """Relative path → size of every file the writer left in ``folder`` (BentoML's own files aside)."""
    return {str(f.relative_to(folder)): f.stat().st_size for f in sorted(folder.rglob("*"))
            if f.is_file() and f.name != "model.yaml"}


def restamp_files(folder: Path) -> None:
    """Record the current file sizes in ``folder``'s ``model.yaml`` (after rewriting a stored version in
    place, e.g. an erasure), so the version still reads as complete."""
    import yaml

    info_path = folder / "model.yaml"
    info = yaml.safe_load(info_path.read_text())
    info.setdefault("metadata", {})[_FILES_KEY] = _file_sizes(folder)
    atomic_write_text(info_path, yaml.safe_dump(info, sort_keys=False))


def _incomplete(version: ModelVersion) -> str | None:
    """Why a stored version is not whole (a file missing or of another size), or None.  Versions saved
    before the file list existed are trusted."""
    files = version.metadata.get(_FILES_KEY)
    if not isinstance(files, dict):
        return None
    for rel, size in files.items():
        path = version.path / rel
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != size:
            return f"{rel} has {path.stat().st_size} bytes, not {size}"
    return None


def _jsonable(value: Any) -> Any:
    """BentoML metadata must be plain JSON-ish values, and refuses None: absent keys say 'none'."""

    def drop_none(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: drop_none(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [drop_none(x) for x in v if x is not None]
        return v

    return drop_none(json.loads(json.dumps(value, default=str)))

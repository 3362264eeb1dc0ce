"""Typed dataset configuration: where the data lives and how its columns map to the canonical schema.

Why pydantic: the YAML is written by people; a typo in a key must fail with the file and the field
named, not be silently ignored (``extra="forbid"``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recsys._yaml import read_yaml, validation_message
from recsys.exceptions import ConfigError

__all__ = [
    "TableSpec",
    "FilesSource",
    "SqlSource",
    "SyntheticSource",
    "DatasetConfig",
    "load_dataset_config",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSpec(_Strict):
    """One table of a source.

    ``columns`` maps *canonical* name → *source* column name; unmapped canonical columns are looked
    up under their own name, and absent optional ones get defaults.
    """

    #: File name in the folder; without an extension, whichever of .csv, .csv.gz or .parquet is there.
    file: str | None = None
    table: str | None = None
    query: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    ts_format: str | None = None
    #: Source ``price`` is the line total (e.g. sales value), so unit price = price / quantity.
    price_is_line_total: bool = False
    #: What to do with purchases whose quantity is ≤ 0: a data error (default), drop them, or count as 1.
    nonpositive_quantity: Literal["error", "drop", "one"] = "error"
    #: Interactions whose item is not in the catalogue: error (default), drop, or add a placeholder item
    #: with no category (explicit, per dataset, because it changes what the models see).
    unknown_items: Literal["error", "drop", "placeholder"] = "error"


class FilesSource(_Strict):
    """The ``source:`` section of a dataset YAML for ``kind: files`` (a folder of CSV or parquet files)."""

    kind: Literal["files"] = "files"
    path: str
    #: Environment variable that overrides ``path`` when set (e.g. a CI machine's data location).
    path_env: str | None = None

    def resolved_path(self, override: str | Path | None = None) -> Path:
        """The folder to read: ``override``, else ``$path_env`` if set, else ``path``; relative paths are
        taken from the project root so the result does not depend on the working directory."""
        raw = str(override) if override else (os.environ.get(self.path_env or "") or self.path)
        p = Path(raw).expanduser()
        if not p.is_absolute():
            # Relative paths are relative to the project root, so the result does not depend on cwd.
            p = (PROJECT_ROOT / p).resolve()
        return p


class SqlSource(_Strict):
    """The ``source:`` section of a dataset YAML for ``kind: sql`` (a SQLite or PostgreSQL URI)."""

    kind: Literal["sql"] = "sql"
    #: ``sqlite:///relative/or/absolute.db`` or ``postgresql://user@host:port/db``.
    uri: str
    uri_env: str | None = None

    def resolved_uri(self, override: str | None = None) -> str:
        """The URI to read: ``override``, else ``$uri_env`` if set, else ``uri``."""
        return override or os.environ.get(self.uri_env or "") or self.uri


class SyntheticSource(_Strict):
    """The ``source:`` section of a dataset YAML for ``kind: synthetic`` (the generated shop)."""

    kind: Literal["synthetic"] = "synthetic"
    seed: int = 0
    n_customers: int | None = None
    n_items: int | None = None


Source = Annotated[FilesSource | SqlSource | SyntheticSource, Field(discriminator="kind")]


class DatasetConfig(_Strict):
    """A dataset: its source, its three tables and the explicit policies that apply to it."""

    name: str
    source: Source
    interactions: TableSpec = TableSpec(file="interactions.csv", table="interactions")
    items: TableSpec = TableSpec(file="items.csv", table="items")
    customers: TableSpec | None = TableSpec(file="customers.csv", table="customers")
    #: Consent to assume for customers with no consent record. Default denied: no consent data means
    #: no marketing email, unless the dataset config says otherwise (and why).
    consent_default: Literal["granted", "denied"] = "denied"

    @model_validator(mode="after")
    def _tables_have_locations(self) -> DatasetConfig:
        if isinstance(self.source, SyntheticSource):
            return self
        for name in ("interactions", "items", "customers"):
            spec: TableSpec | None = getattr(self, name)
            if spec is None:
                continue
            if isinstance(self.source, FilesSource) and not spec.file:
                raise ValueError(f"{name}.file is required for a files source")
            if isinstance(self.source, SqlSource) and not (spec.table or spec.query):
                raise ValueError(f"{name}.table or {name}.query is required for a sql source")
        return self


def load_dataset_config(path: str | Path) -> DatasetConfig:
    """Read and validate a dataset YAML; errors name the file and the field."""
    raw = read_yaml(path, "dataset config")
    try:
        return DatasetConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(validation_message(path, "dataset config", exc)) from None

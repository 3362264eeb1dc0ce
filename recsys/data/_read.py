"""Read one raw table from a folder of files or a SQL database, untouched except for a row number.

Why read everything as text first (for CSV): a strict loader must report *which* row has a bad
date or number; letting the CSV parser infer types would either fail with a parser message that
names no row, or silently turn bad cells into nulls.  Parsing happens in ``_validate``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recsys.data._config import FilesSource, SqlSource, TableSpec
from recsys.exceptions import ConfigError, SchemaError

__all__ = ["RawTable", "read_table", "redact_uri", "connect"]

ROW = "__row"


@dataclass(frozen=True)
class RawTable:
    """One raw table as read, with what error messages need to point at a row of the source."""

    frame: pl.DataFrame  # source columns + ROW (1-based record number)
    origin: str  # what to call it in messages: a file path or "uri#table"
    unit: str  # "line" for CSV (header = line 1) or "row"
    row_offset: int  # add to ROW to get the unit number

    def where(self, row: int) -> str:
        """How messages name a row: ``line N`` of a CSV file (header = line 1) or ``row N`` of a table."""
        return f"{self.unit} {row + self.row_offset}"


def redact_uri(uri: str) -> str:
    """Drop a password from a database URI before it is printed or stored in a bundle."""
    if "://" in uri and "@" in uri:
        scheme, rest = uri.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return uri


def connect(uri: str) -> Any:
    """A DB-API connection for ``sqlite:///path`` or ``postgresql://…`` URIs."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if path != ":memory:" and not Path(path).exists():
            raise ConfigError(f"SQLite database not found: {path}")
        return sqlite3.connect(path)
    if uri.startswith(("postgresql://", "postgres://")):
        import psycopg  # imported lazily: only PostgreSQL users pay for it

        return psycopg.connect(uri)
    raise ConfigError(f"unsupported database URI {redact_uri(uri)!r}: use sqlite:///PATH or postgresql://…")


def _read_file(path: Path) -> tuple[pl.DataFrame, str, int]:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        frame = pl.read_csv(path, infer_schema=False, null_values=[""], raise_if_empty=False)
        return frame, "line", 1
    if name.endswith(".parquet"):
        return pl.read_parquet(path), "row", 0
    raise ConfigError(f"{path}: unsupported file type (use .csv, .csv.gz or .parquet)")


_EXTENSIONS = (".csv", ".csv.gz", ".parquet")


def _resolve_file(folder: Path, name: str, table: str) -> Path:
    """``folder / name``; a name without extension means whichever supported format is there.

    Why: a folder written by ``recsys data generate --format parquet`` and one written as CSV
    should load through the same dataset config (``canonical-files``); two formats of the same
    table side by side are ambiguous and refused rather than guessed.
    """
    if Path(name).suffix:
        path = folder / name
        if not path.exists():
            raise SchemaError(f"{path}: {table} file not found", source=str(path))
        return path
    found = [folder / f"{name}{ext}" for ext in _EXTENSIONS if (folder / f"{name}{ext}").is_file()]
    if not found:
        tried = folder / f"{name}{{{','.join(_EXTENSIONS)}}}"
        raise SchemaError(f"{tried}: {table} file not found", source=str(folder / name))
    if len(found) > 1:
        raise SchemaError(
            f"{folder}: {table} exists as {' and '.join(p.name for p in found)}; keep one, or name the file "
            "with its extension in the dataset config", source=str(found[0]),
        )
    return found[0]


def read_table(
    source: FilesSource | SqlSource,
    spec: TableSpec,
    table: str,
    *,
    location: str | Path | None = None,
) -> RawTable:
    """Read ``table`` as described by ``spec`` from ``source`` (``location`` overrides path/URI)."""
    if isinstance(source, FilesSource):
        folder = source.resolved_path(location)
        if not folder.is_dir():
            raise ConfigError(
                f"data folder not found: {folder} (set it with --data-path"
                + (f" or ${source.path_env}" if source.path_env else "")
                + ")"
            )
        path = _resolve_file(folder, str(spec.file), table)
        try:
            frame, unit, offset = _read_file(path)
        except pl.exceptions.PolarsError as exc:
            raise SchemaError(f"{path}: cannot be read as a {table} table: {exc}", source=str(path)) from None
        origin = str(path)
    else:
        uri = source.resolved_uri(str(location) if location else None)
        query = spec.query or f'SELECT * FROM "{spec.table}"'
        origin = f"{redact_uri(uri)}#{spec.table or 'query'}"
        conn = connect(uri)
        try:
            frame = pl.read_database(query, connection=conn, infer_schema_length=None)
        except Exception as exc:  # driver errors have no common base class
            raise SchemaError(f"{origin}: query failed: {exc}", source=origin) from None
        finally:
            conn.close()
        unit, offset = "row", 0
    frame = frame.with_row_index(ROW, offset=1)
    return RawTable(frame=frame, origin=origin, unit=unit, row_offset=offset)

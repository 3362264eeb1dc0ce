"""Write a ``Dataset`` out as files or as a SQLite database, atomically; or stream one in blocks.

Why here: the synthetic shop is the project's embedded default, and the file and SQL loaders are
tested by round-tripping it through exactly the formats a real shop would hand us.  Why atomic:
a crashed export must never leave a half-written ``interactions.csv`` that a later load would
accept as truth; we write to a temporary sibling and ``os.replace`` it into place only when whole.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Final, Literal, cast

import polars as pl

from recsys.dataset import Dataset
from recsys.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recsys.data.synthetic import SyntheticShop

__all__ = ["write_files", "write_sqlite", "FileFormat", "TS_TEXT_FORMAT", "TableSink", "staged_folder",
           "check_replaceable"]

FileFormat = Literal["csv", "csv.gz", "parquet"]

#: Text form of timestamps in CSV and SQLite (``YYYY-MM-DD HH:MM:SS.ffffff``): sorts as text and
#: is parsed by the loader's default formats.
TS_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S%.6f"

def _as_dataset(data: Dataset | SyntheticShop) -> Dataset:
    ds = getattr(data, "dataset", data)
    if not isinstance(ds, Dataset):
        raise TypeError(f"expected a Dataset or SyntheticShop, got {type(data).__name__}")
    return ds


def _frames(ds: Dataset) -> dict[str, pl.DataFrame]:
    return {"interactions": ds.interactions, "items": ds.items, "customers": ds.customers}


def _write_one(frame: pl.DataFrame, path: Path, fmt: FileFormat) -> None:
    if fmt == "parquet":
        frame.write_parquet(path)
    elif fmt == "csv":
        frame.write_csv(path, datetime_format=TS_TEXT_FORMAT)
    elif fmt == "csv.gz":
        with gzip.open(path, "wb", compresslevel=6) as fh:
            frame.write_csv(fh, datetime_format=TS_TEXT_FORMAT)  # type: ignore[call-overload]  # GzipFile is an IO[bytes]
    else:  # pragma: no cover - guarded by write_files
        raise ValueError(fmt)


def write_files(
    data: Dataset | SyntheticShop,
    folder: str | Path,
    fmt: FileFormat = "csv",
) -> dict[str, Path]:
    """Write ``interactions.<ext>``, ``items.<ext>`` and ``customers.<ext>`` into ``folder``.

    Parameters
    ----------
    data
        A ``Dataset`` or a ``SyntheticShop`` (its ``.dataset`` is written).
    folder
        Target folder; created if missing.  Existing files of the same names are replaced, other
        files are left alone.
    fmt
        ``"csv"``, ``"csv.gz"`` or ``"parquet"``.  CSV timestamps are written as
        ``YYYY-MM-DD HH:MM:SS.ffffff`` and booleans as ``true``/``false``.

    Returns
    -------
    dict[str, Path]
        Table name → path written.

    Notes
    -----
    All three files are first written to a temporary directory inside ``folder`` and moved into
    place with ``os.replace`` only after every one of them was written, so a failure leaves no
    partial file behind (the three moves are individually atomic).
    """
    if fmt not in ("csv", "csv.gz", "parquet"):
        raise ValueError(f"fmt must be 'csv', 'csv.gz' or 'parquet', not {fmt!r}")
    ds = _as_dataset(data)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".write-", dir=folder))
    try:
        staged: dict[str, Path] = {}
        for name, frame in _frames(ds).items():
            staged[name] = tmp / f"{name}.{fmt}"
            _write_one(frame, staged[name], fmt)
        out: dict[str, Path] = {}
        for name, path in staged.items():
            out[name] = folder / path.name
            os.replace(path, out[name])
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sql_type(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean or dtype.is_integer():
        return "INTEGER"
    if dtype.is_float():
        return "REAL"
    return "TEXT"


def _sqlite_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps → ISO text, booleans → 0/1, everything else unchanged."""
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(name).dt.strftime(TS_TEXT_FORMAT))
        elif dtype == pl.Boolean:
            exprs.append(pl.col(name).cast(pl.Int64))
        elif dtype == pl.Float32:  # keep 1.0 as 1.0, not 1.0000000149
            exprs.append(pl.col(name).cast(pl.Float64))
        else:
            exprs.append(pl.col(name))
    return frame.select(exprs)


def write_sqlite(data: Dataset | SyntheticShop, path: str | Path, *, batch_rows: int = 100_000) -> Path:
    """Write tables ``interactions``, ``items`` and ``customers`` into a new SQLite file.

    Parameters
    ----------
    data
        A ``Dataset`` or a ``SyntheticShop``.
    path
        The database file.  An existing file is *replaced* as a whole (not appended to).
    batch_rows
        Rows per ``executemany`` batch (bounds memory on large datasets).

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    Timestamps are stored as text ``YYYY-MM-DD HH:MM:SS.ffffff``, booleans as 0/1, nulls as NULL.
    Uses only the standard library ``sqlite3`` (polars' ``write_database`` needs SQLAlchemy or
    ADBC, which the project does not depend on).  The file is built under a temporary name in the
    same directory and moved into place with ``os.replace``.
    """
    ds = _as_dataset(data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            for name, frame in _frames(ds).items():
                cols = ", ".join(f'"{c}" {_sql_type(t)}' for c, t in frame.schema.items())
                conn.execute(f'CREATE TABLE "{name}" ({cols})')
                ready = _sqlite_ready(frame)
                marks = ", ".join("?" * ready.width)
                insert = f'INSERT INTO "{name}" VALUES ({marks})'
                for start in range(0, ready.height, batch_rows):
                    conn.executemany(insert, ready.slice(start, batch_rows).iter_rows())
            conn.commit()
        finally:
            conn.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------- streaming a dataset in blocks

_DATASET_FILE: Final[re.Pattern[str]] = re.compile(
    r"^((interactions|items|customers)\.(csv|csv\.gz|parquet)|manifest\.json)$"
)


class TableSink:
    """Appends frames to one table file: a parquet row group per frame, or CSV (optionally gzipped).

    Why: a dataset too big for memory is written block by block; the file stays one table a loader
    reads like any other (parquet keeps the first frame's arrow schema for every row group).
    """

    def __init__(self, path: Path, fmt: FileFormat) -> None:
        self.path, self.fmt = path, fmt
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._text: IO[bytes] | None = None

    def write(self, frame: pl.DataFrame) -> None:
        """Append ``frame`` (the file opens on the first call): a parquet row group cast to the first frame's
        schema, or CSV rows with a header only in the first block."""
        if self.fmt == "parquet":
            import pyarrow.parquet as pq  # only streamed writes need it

            table = frame.to_arrow()
            if self._parquet is None:
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            self._parquet.write_table(table.cast(self._schema))
            return
        first = self._text is None
        if self._text is None:
            opened = gzip.open(self.path, "wb", compresslevel=6) if self.fmt == "csv.gz" else open(self.path, "wb")
            self._text = cast(IO[bytes], opened)
        frame.write_csv(self._text, include_header=first, datetime_format=TS_TEXT_FORMAT)

    def __enter__(self) -> TableSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._text is not None:
            self._text.close()


def check_replaceable(folder: Path) -> None:
    """Refuse a folder ``staged_folder`` would destroy something in: it is replaced as a whole."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(f"out: {folder} exists and is not a folder")
    foreign = sorted(p.name for p in folder.iterdir() if not _DATASET_FILE.match(p.name))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise ConfigError(f"out: {folder} holds files that are not part of a generated dataset ({shown}); "
                          "the folder is replaced as a whole, so choose a new or empty one")


def _remove_stale(folder: Path) -> None:
    """Remove staged folders of ``folder`` left by killed runs (their process id is gone)."""
    for stale in folder.parent.glob(f".{glob.escape(folder.name)}.tmp-*"):
        pid = stale.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (ValueError, PermissionError):  # not our naming, or another user's live process
            continue


@contextlib.contextmanager
def staged_folder(folder: Path) -> Iterator[Path]:
    """A hidden sibling folder to write into; it takes ``folder``'s place only if the block ends cleanly.

    Why a whole folder, not file by file: a dataset streamed for minutes must never be half
    visible, nor mixed with the tables of an older one.  The swap is two renames; killed between
    them, ``folder`` is missing (a loader says so) and the previous dataset is whole in the hidden
    ``.<name>.old-*`` sibling.  Any error or interrupt removes the staged folder; one left by a
    killed process is removed by the next run.
    """
    check_replaceable(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(folder)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()  # not mkdtemp (mode 0700): the folder becomes the dataset
    try:
        yield tmp
        check_replaceable(folder)
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            os.replace(folder, old / folder.name)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

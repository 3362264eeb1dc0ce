"""Atomic file writing, one implementation for the whole library.

Why: every file the engine writes is read by something else — a loader, the service, a scheduler
waiting for the picks file.  A crash (or a full disk) mid-write must leave either the old file or
none, never half of a new one.  So everything is written to a temporary sibling (same directory,
same file system) and moved into place with ``os.replace``, which is atomic on POSIX; on failure
the temporary file is removed.

    >>> atomic_write_text("out/report.md", "# Report\\n")  # doctest: +SKIP
    >>> atomic_write("picks.parquet", frame.write_parquet)  # doctest: +SKIP
    >>> with atomic_dir("models/als") as tmp:  # doctest: +SKIP
    ...     save_arrays(tmp / "arrays.npz", arrays)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SHARED_MODE", "atomic_dir", "atomic_write", "atomic_write_bytes", "atomic_write_text", "save_arrays"]

#: Permissions of written files (``mkstemp`` makes them private; what we write is meant to be read).
SHARED_MODE = 0o644


def atomic_write(path: str | Path, write: Callable[[Path], Any], *, mode: int | None = SHARED_MODE) -> Path:
    """Create ``path`` by calling ``write(tmp)`` on a temporary file beside it, then move it into place.

    Parameters
    ----------
    path
        The file to (re)place; its parent folders are created.
    write
        Writes the whole content to the path it is given (e.g. ``frame.write_parquet``); the file
        exists (empty) when it is called.
    mode
        Permissions of the result; ``None`` keeps ``mkstemp``'s private ``0o600``.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = SHARED_MODE) -> Path:
    """Write ``data`` to ``path`` atomically (see ``atomic_write``)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), mode=mode)


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8",
                      mode: int | None = SHARED_MODE) -> Path:
    """Write ``text`` to ``path`` atomically, exactly as given (no newline translation)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding=encoding, newline=""), mode=mode)


class atomic_dir:
    """Context manager: write into a temp dir beside ``path``, then swap it into place on success.

    Why: a crash mid-save must never leave a half-written model where a loader would find it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        return self.tmp

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.path, old)
            os.replace(self.tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.path)


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez(path, **arrays)``: named arrays, data only (read back with ``allow_pickle=False``).

    One place for it because numpy's stubs type ``**kwds`` against ``allow_pickle: bool``.
    """
    np.savez(path, **arrays)  # type: ignore[arg-type]

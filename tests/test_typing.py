"""The library type-checks: ``mypy`` (configured in pyproject.toml, ``files = ["recsys"]``) finds nothing.

Why a test: STYLE.md asks for types everywhere in ``recsys/`` and mypy clean; run here, a change that
breaks a typed seam fails CI like any other.  Stub changes in numpy / polars / pydantic move what mypy
reports, so the check runs against the minor versions it was made clean with (mypy itself is pinned in
the ``test`` extra) and skips, saying so, on others.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED_WITH = {"numpy": "2.4", "polars": "2.1", "pydantic": "2.14"}


def test_mypy_finds_nothing(tmp_path: Path) -> None:
    moved = {lib: version(lib) for lib, v in CHECKED_WITH.items() if not version(lib).startswith(v + ".")}
    if moved:
        pytest.skip(f"type stubs differ from the checked versions {CHECKED_WITH}: {moved}")
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]

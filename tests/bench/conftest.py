"""Shared by the bench tests: the bench scripts are files, not a package, so they are loaded by path."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module (named ``bench_<name>``)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", name="load_bench")
def load_bench_fixture() -> Callable[[str], ModuleType]:
    """``load_bench`` for tests and fixtures that take it as an argument."""
    return _load_bench

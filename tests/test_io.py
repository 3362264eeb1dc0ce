"""``recsys._io``: a file or folder appears whole or not at all; ``recsys`` imports without side effects."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from recsys._io import atomic_dir, atomic_write, atomic_write_bytes, atomic_write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_replace_whole_files_and_clean_up_after_a_failure(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "report.md"
    assert atomic_write_text(out, "a\r\nb\n") == out  # parents created, text kept byte for byte
    assert out.read_bytes() == b"a\r\nb\n" and _mode(out) == 0o644
    atomic_write_bytes(out, b"\x00new")
    assert out.read_bytes() == b"\x00new"
    private = atomic_write_text(tmp_path / "state.json", "{}", mode=None)
    assert _mode(private) == 0o600

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(out, half_then_fail)
    assert out.read_bytes() == b"\x00new"  # the old file is untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.md"]  # no temporary file left

    folder = tmp_path / "model"
    with atomic_dir(folder) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(folder) as tmp:
        (tmp / "b.txt").write_text("2")
        raise RuntimeError
    assert [p.name for p in folder.iterdir()] == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "state.json", "sub"]


def test_recsys_has_a_version_and_no_import_side_effects() -> None:
    code = ("import os, sys; before = dict(os.environ); import recsys; "
            "assert dict(os.environ) == before; "
            "assert not {'bentoml', 'polars', 'numpy'} & set(sys.modules), sorted(sys.modules); "
            "print(recsys.__version__)")
    env = {k: v for k, v in os.environ.items() if k != "BENTOML_HOME"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() and res.stdout.strip() != "0+unknown"  # installed (editable) in the venv

"""``recsys recommend --engine ray`` gives the local file's rows, in its order; a worker killed mid-job is
restarted by Ray and the folder is still complete and free of duplicates; no Ray or no cluster at
``--address`` fails with a message that says what to do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recsys.bundle import Bundle
from recsys.registry import Registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tag(synthetic_bundle_dir: Path) -> str:
    """The session's synthetic bundle, stored in the test model store under its own tag."""
    bundle = Bundle.load(synthetic_bundle_dir)
    return Registry().save(bundle.write_into, metadata={"dataset": "synthetic"},
                           version=f"engines-{uuid.uuid4().hex[:8]}")


def _customers(path: Path, tag: str, n: int) -> Path:
    from recsys.engines.picks import bundle_customer_ids

    path.write_text("\n".join(bundle_customer_ids(Registry().resolve(tag).path)[:n] + ["NEVER-SEEN"]) + "\n")
    return path


def test_cli_ray_equals_local_row_for_row(ray_local: object, tag: str, tmp_path: Path) -> None:
    from pipelines.cli import app
    from recsys.engines.picks import read_parts

    ids = _customers(tmp_path / "ids.txt", tag, 600)
    common = ["recommend", "--model", tag, "--customers", str(ids), "--n", "12", "--new-only", "--batch", "100",
              "--no-progress"]
    runner = CliRunner()
    local = runner.invoke(app, [*common, "--out", str(tmp_path / "local.parquet")])
    assert local.exit_code == 0, local.output
    ray = runner.invoke(app, [*common, "--engine", "ray", "--workers", "2", "--out", str(tmp_path / "ray")])
    assert ray.exit_code == 0, ray.output
    assert "601 customers" in ray.output and "customers/s" in ray.output and "dashboard" in ray.output

    a, b = pl.read_parquet(tmp_path / "local.parquet"), read_parts(tmp_path / "ray")
    assert a.height == 12 * 601
    assert a.schema == b.schema
    assert a.equals(b)  # same rows, same order, same scores
    parts = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert parts[0] == "_manifest.json" and len(parts) == 1 + 7  # 601 ids in blocks of --batch 100
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_worker_killed_mid_job_is_retried_and_nothing_is_lost_or_doubled(
        ray_local, synthetic_bundle_dir: Path, tmp_path: Path) -> None:
    from recsys.batch import recommend_batches
    from recsys.engines import BundleSource
    from recsys.engines.picks import PicksWorker, bundle_customer_ids, read_parts, recommend_ray

    ids = bundle_customer_ids(synthetic_bundle_dir)[:240]
    marker = tmp_path / "killed"

    class DiesOnce(PicksWorker):
        """SIGKILLs its own process the first time it starts block 1: a real crash, not an exception."""

        def block(self, frame: pl.DataFrame) -> pl.DataFrame:
            if frame["customer_id"][0] == ids[60] and not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return super().block(frame)

    summary = recommend_ray(ray_local, BundleSource.of(synthetic_bundle_dir), ids, 12, tmp_path / "out",
                            batch=60, worker=DiesOnce)
    assert marker.exists()  # the kill happened
    got = read_parts(tmp_path / "out")
    assert got.select("customer_id", "rank").is_duplicated().sum() == 0
    from recsys.reasons import item_names

    bundle = Bundle.load(synthetic_bundle_dir)
    want = pl.concat(recommend_batches(bundle.hybrid, ids, 12, progress=False,
                                       names=item_names(bundle.catalogue)))
    assert got.equals(want) and summary.rows == want.height == 12 * len(ids)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_unreachable_address_fails_fast_and_names_it(scheme: str, tmp_path: Path) -> None:
    pytest.importorskip("ray.data", reason="Ray is not installed")
    address = f"{scheme}127.0.0.1:{_free_port()}"  # nothing listens there
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "recommend", "--model", "latest", "--all",
                           "--engine", "ray", "--address", address, "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ})
    assert proc.returncode == 2, proc.stderr
    assert f"no Ray cluster reachable at --address {address}" in proc.stderr
    assert time.perf_counter() - t0 < 30


def test_without_ray_the_command_names_the_extra(tag: str, tmp_path: Path, monkeypatch) -> None:
    from pipelines.cli import app

    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the extra sees
    result = CliRunner().invoke(app, ["recommend", "--model", tag, "--all", "--engine", "ray",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "pip install -e '.[ray]'" in result.output
    assert not (tmp_path / "o").exists()

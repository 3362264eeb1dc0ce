"""Shared fixtures.  Global state is isolated *before* anything imports bentoml or implicit."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

_BENTO_HOME = tempfile.mkdtemp(prefix="recsys-test-bentoml-")
os.environ["BENTOML_HOME"] = _BENTO_HOME
os.environ["BENTOML_DO_NOT_TRACK"] = "True"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

import polars as pl  # noqa: E402
import pytest  # noqa: E402

from recsys.dataset import Dataset  # noqa: E402

SHARED_DATA = Path(os.environ.get("RECSYS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; tests marked ``realdata`` skip when it is absent."""
    if not (SHARED_DATA / "completejourney" / "transactions.csv.gz").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set RECSYS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture()
def tiny() -> Dataset:
    """Six customers, six items, a known answer: a1 and a2 are bought together, b-items are socks."""
    t0 = datetime(2025, 1, 1)
    rows = [
        # customer, item, day, order
        ("c1", "a1", 0, "o1"), ("c1", "a2", 0, "o1"), ("c1", "s1", 5, "o2"),
        ("c2", "a1", 1, "o3"), ("c2", "a2", 1, "o3"),
        ("c3", "a1", 2, "o4"), ("c3", "a2", 9, "o5"), ("c3", "s1", 9, "o5"),
        ("c4", "a1", 3, "o6"),
        ("c5", "s1", 4, "o7"), ("c5", "s1", 40, "o8"), ("c5", "b1", 40, "o8"),
        ("c6", "b1", 6, "o9"), ("c6", "b2", 6, "o9"),
    ]
    inter = pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "ts": [t0 + timedelta(days=r[2]) for r in rows],
            "order_id": [r[3] for r in rows],
        }
    )
    items = pl.DataFrame(
        {
            "item_id": ["a1", "a2", "s1", "b1", "b2", "z9"],
            "category": ["trousers", "belts", "socks", "bags", "bags", "hats"],
            "price": [50.0, 20.0, 5.0, 80.0, 90.0, 15.0],
        }
    )
    return Dataset(inter, items, source="tiny")


PG_URI = os.environ.get("RECSYS_TEST_PG_URI", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture()
def pg_uri():
    """A PostgreSQL URI with a fresh, private schema (dropped afterwards); skips when no server answers."""
    try:
        import psycopg

        conn = psycopg.connect(PG_URI, connect_timeout=3, autocommit=True)
    except Exception as exc:  # noqa: BLE001 - any connection failure means "not available here"
        pytest.skip(f"PostgreSQL not reachable at {PG_URI}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    import uuid

    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URI else "?"
    try:
        yield f"{PG_URI}{sep}options=-csearch_path%3D{schema}"
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


@pytest.fixture(scope="session")
def synthetic_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle trained on the synthetic shop (small config), saved as a directory; shared by the session."""
    from recsys.config import GENERATORS, TrainConfig
    from recsys.data.synthetic import generate_shop
    from recsys.training import train

    cfg = TrainConfig.model_validate({
        "ranker": {"max_iter": 40},
        "generators": {name: {"candidates": 30} for name in GENERATORS if name != "bpr"},
    })
    result = train(generate_shop(seed=0).dataset, cfg, progress=False)
    path = tmp_path_factory.mktemp("bundles") / "synthetic"
    result.bundle.save(path)
    return path


@pytest.fixture(scope="module")
def fresh_bentoml_metrics() -> None:
    """Forget the Prometheus metrics of an earlier in-process BentoML app.  BentoML's metrics middleware
    registers its histograms in the process-wide registry on an app's first request, so a second app in
    the same test session (each service test module starts its own) would fail with DuplicateTimeseries."""
    from prometheus_client import REGISTRY

    for collector, names in list(REGISTRY._collector_to_names.items()):  # noqa: SLF001 - no public iterator
        if any(name.startswith("bentoml_") for name in names):
            REGISTRY.unregister(collector)

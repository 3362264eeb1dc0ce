"""The same synthetic shop read back from CSV, Parquet and SQLite gives identical canonical frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.data import DatasetConfig, load_dataset
from recsys.data.synthetic import generate_shop, write_files, write_sqlite

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shop():  # type: ignore[no-untyped-def]
    return generate_shop(seed=3, n_customers=400, n_items=200)


def _files_cfg(folder: Path, ext: str) -> DatasetConfig:
    return DatasetConfig.model_validate({
        "name": "s", "source": {"kind": "files", "path": str(folder)},
        "interactions": {"file": f"interactions.{ext}"}, "items": {"file": f"items.{ext}"},
        "customers": {"file": f"customers.{ext}"},
    })


@pytest.mark.parametrize("ext", ["csv", "csv.gz", "parquet"])
def test_files_and_sqlite_identical(shop, tmp_path: Path, ext: str) -> None:  # type: ignore[no-untyped-def]
    write_files(shop.dataset, tmp_path / "f", fmt=ext)
    from_files, report = load_dataset(_files_cfg(tmp_path / "f", ext))
    assert report.ok
    db = tmp_path / "shop.sqlite"
    write_sqlite(shop.dataset, db)
    from_sql, _ = load_dataset(ROOT / "configs" / "datasets" / "canonical-sqlite.yaml", location=f"sqlite:///{db}")
    for name in ("interactions", "items", "customers"):
        a, b = getattr(from_files, name), getattr(from_sql, name)
        assert a.equals(b), name
    assert from_files.interactions.equals(shop.dataset.interactions)
    assert from_files.fingerprint()["sha256"] == from_sql.fingerprint()["sha256"] == shop.dataset.fingerprint()["sha256"]

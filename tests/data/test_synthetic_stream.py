"""The streamed (H&M-sized) synthetic shop: loads through the normal loader, is deterministic per
block, keeps the planted structure, writes atomically; and the loader reads whichever file format
a canonical folder holds.

Why tests on tiny shops: a streamed shop is many independent blocks of the in-memory generator, so
what holds for two or three small blocks holds for 28 large ones; the full size is measured, not
tested (README).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from recsys.data import load_dataset, load_dataset_config
from recsys.data.synthetic import ShopConfig, generate_shop, write_files
from recsys.data.synthetic_stream import (
    PRESETS,
    generate_shop_files,
    preset_config,
    size_for_lines,
)
from recsys.exceptions import ConfigError, SchemaError
from recsys.schema import CUSTOMERS, INTERACTIONS

runner = CliRunner()
CANONICAL = Path(__file__).resolve().parents[2] / "configs" / "datasets" / "canonical-files.yaml"
#: Two-and-a-bit blocks of a small shop with many lines per customer (planted structure is visible).
SMALL = ShopConfig(seed=5, n_customers=2_500, n_items=300, days=730,
                   extra_orders_per_year=(40.0, 14.0, 4.0, 0.0))


def _load(folder: Path) -> pl.DataFrame:
    ds, report = load_dataset(CANONICAL, location=folder)
    assert report.ok
    return ds.purchases.join(ds.items.select("item_id", "category"), on="item_id")


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stream") / "shop"
    generate_shop_files(SMALL, folder, block_size=1_000)
    return folder


# ------------------------------------------------------------------------- loads and validates


def test_cli_preset_fraction_loads_back_and_validates(tmp_path: Path) -> None:
    out = tmp_path / "hm"
    result = runner.invoke(app, ["data", "generate", "--preset", "hm", "--scale", "0.0005",
                                 "--format", "parquet", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    cfg, lines = preset_config("hm", scale=0.0005)
    assert cfg.n_customers == round(PRESETS["hm"].n_customers * 0.0005) and cfg.days == 730
    assert sorted(p.name for p in out.iterdir()) == [
        "customers.parquet", "interactions.parquet", "items.parquet", "manifest.json"]
    result = runner.invoke(app, ["data", "validate", "-d", "canonical-files", "--data-path", str(out)])
    assert result.exit_code == 0, result.output
    ds, _ = load_dataset(CANONICAL, location=out)
    assert dict(ds.interactions.schema) == INTERACTIONS and dict(ds.customers.schema) == CUSTOMERS
    assert ds.customers.height == cfg.n_customers and ds.items.height == cfg.n_items
    assert abs(ds.purchases.height / lines - 1) < 0.03, "sized to the target number of lines"
    assert ds.interactions["ts"].min() >= cfg.start_datetime  # type: ignore[operator]
    assert ds.interactions["ts"].max() < cfg.end_datetime  # type: ignore[operator]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["purchases"] == ds.purchases.height and manifest["target_lines"] == lines


def test_streamed_shop_is_valid_across_blocks(streamed: Path) -> None:
    ds, _ = load_dataset(CANONICAL, location=streamed)
    assert ds.customers.height == SMALL.n_customers
    assert not ds.customers["customer_id"].is_duplicated().any()
    assert ds.interactions["customer_id"].is_in(ds.customers["customer_id"].implode()).all()
    joined = ds.interactions.join(ds.customers, on="customer_id")
    assert (joined["ts"] >= joined["created_at"]).all()
    orders = ds.purchases.group_by("order_id").agg(c=pl.col("customer_id").n_unique(),
                                                   t=pl.col("ts").n_unique())
    assert (orders["c"] == 1).all() and (orders["t"] == 1).all(), "order ids are unique across blocks"
    blocks = ds.purchases["order_id"].str.slice(1, 5).unique().sort().to_list()
    assert blocks == ["00000", "00001", "00002"]
    assert ds.items["category"].n_unique() == 20


# ---------------------------------------------------------------------------------- determinism


def test_same_seed_same_files(tmp_path: Path, streamed: Path) -> None:
    again = generate_shop_files(SMALL, tmp_path / "again", block_size=1_000)
    for name in ("interactions.parquet", "items.parquet", "customers.parquet", "manifest.json"):
        assert (again.folder / name).read_bytes() == (streamed / name).read_bytes(), name


def test_first_block_does_not_depend_on_total_size(tmp_path: Path, streamed: Path) -> None:
    smaller = generate_shop_files(replace(SMALL, n_customers=1_300), tmp_path / "smaller", block_size=1_000)
    first = pl.col("customer_id") <= "C00001000"
    a = pl.read_parquet(streamed / "interactions.parquet").filter(first)
    b = pl.read_parquet(smaller.files["interactions"]).filter(first)
    assert a.height > 0 and a.equals(b)
    assert pl.read_parquet(streamed / "items.parquet").equals(pl.read_parquet(smaller.files["items"]))
    other_seed = generate_shop_files(replace(SMALL, n_customers=1_000, seed=6), tmp_path / "seed6",
                                     block_size=1_000)
    assert not pl.read_parquet(other_seed.files["interactions"]).equals(b)


def test_default_in_memory_shop_is_untouched() -> None:
    """The streamed path must not change ``generate_shop`` (many tests pin its rows)."""
    ds = generate_shop().dataset
    assert ds.interactions["order_id"][0] == "O0000001" and ds.customers["customer_id"][0] == "C000001"
    assert "product_type" not in ds.items.columns


# ------------------------------------------------------------------------------ planted structure


def test_trousers_buyers_buy_belts_later_more_often(streamed: Path) -> None:
    lines = _load(streamed)
    trousers = (lines.filter(pl.col("category") == "trousers")
                .group_by("customer_id").agg(t0=pl.col("ts").min()))
    belts = lines.filter(pl.col("category") == "belts").select("customer_id", t_b="ts")
    later = trousers.join(belts, on="customer_id").filter(pl.col("t_b") > pl.col("t0"))["customer_id"]
    share_after_trousers = later.n_unique() / trousers.height
    others = lines.filter(~pl.col("customer_id").is_in(trousers["customer_id"].implode()))
    belt_buyers = others.filter(pl.col("category") == "belts")["customer_id"].n_unique()
    share_others = belt_buyers / others["customer_id"].n_unique()
    assert share_after_trousers > 2 * share_others


def test_replenishment_and_long_tail(streamed: Path) -> None:
    lines = _load(streamed)
    socks = lines.filter(pl.col("category") == "socks").sort("customer_id", "ts")
    gaps = socks.with_columns(gap=pl.col("ts").diff().over("customer_id").dt.total_days()).drop_nulls("gap")
    assert 45 <= float(gaps["gap"].median()) <= 75, "socks every ~60 days"  # type: ignore[arg-type]
    sales = lines.group_by("item_id").len().sort("len", descending=True)["len"]
    top = float(sales.head(round(0.1 * 300)).sum() / sales.sum())
    assert top > 0.4, f"the top 10 % of items carry {top:.0%} of sales: a long tail"


# ------------------------------------------------------------------- sizing, logging, atomicity


def test_size_for_lines_hits_target_and_refuses_impossible() -> None:
    cfg = ShopConfig(seed=1, n_customers=800, n_items=100, days=365)
    sized = size_for_lines(cfg, 12_000)
    assert sized.extra_orders_per_year[0] > cfg.extra_orders_per_year[0]
    with pytest.raises(ConfigError, match="every customer orders at least once"):
        size_for_lines(cfg, 800)


def test_progress_and_final_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.INFO, logger="recsys.data.synthetic_stream"):
        shop = generate_shop_files(replace(SMALL, n_customers=300), tmp_path / "p", block_size=100,
                                   progress=True)
    err = capsys.readouterr().err
    assert "generate" in err and "300/300" in err, "a tqdm bar over customers on stderr"
    final = caplog.records[-1].getMessage()
    assert f"{shop.n_purchases:,} purchase lines" in final and "300 customers" in final
    assert str(tmp_path / "p") in final and "s →" in final and "3 blocks" in final


def test_killed_run_leaves_previous_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "shop"
    generate_shop_files(replace(SMALL, n_customers=200), out, block_size=100, fmt="csv")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    from recsys.data import synthetic_stream

    real, calls = synthetic_stream._block, []

    def dies(*args: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(synthetic_stream, "_block", dies)
    with pytest.raises(KeyboardInterrupt):
        generate_shop_files(replace(SMALL, n_customers=300, seed=9), out, block_size=100, fmt="csv")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop"], "no temporary folder left"


def test_next_run_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    dead = tmp_path / ".shop.tmp-999999999-abcd"  # no such process id
    dead.mkdir()
    (dead / "interactions.parquet").write_bytes(b"half")
    alive = tmp_path / f".shop.tmp-{os.getpid()}-abcd"
    alive.mkdir()
    generate_shop_files(replace(SMALL, n_customers=50), tmp_path / "shop")
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "shop"]


def test_refuses_a_folder_with_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        generate_shop_files(replace(SMALL, n_customers=50), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# -------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(("args", "flag"), [
    (["--scale", "0.1"], "--scale"),
    (["--preset", "hm", "--scale", "0.1", "--customers", "5"], "--scale"),
    (["--preset", "hm", "--format", "sqlite"], "--format"),
    (["--lines", "1000"], "--lines"),
    (["--preset", "zara"], "--preset"),
    (["--block-size", "10"], "--block-size"),
    (["--preset", "hm", "--scale", "0"], "--scale"),
])
def test_bad_flag_combination_names_the_flag(tmp_path: Path, args: list[str], flag: str) -> None:
    result = runner.invoke(app, ["data", "generate", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert flag in result.output
    assert not (tmp_path / "x").exists()


def test_cli_explicit_sizes_stream_csv(tmp_path: Path) -> None:
    out = tmp_path / "csv"
    result = runner.invoke(app, ["data", "generate", "--customers", "300", "--items", "60", "--lines",
                                 "3000", "--days", "200", "--format", "csv", "--out", str(out),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "purchase lines" in result.output and "300 customers" in result.output
    ds, _ = load_dataset(CANONICAL, location=out)
    assert abs(ds.purchases.height / 3000 - 1) < 0.03 and ds.items.height == 60


# ------------------------------------------------------------- the loader reads any canonical format


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_canonical_files_reads_whichever_format(tmp_path: Path, fmt: str) -> None:
    shop = generate_shop(seed=2, n_customers=100)
    write_files(shop, tmp_path, fmt)  # type: ignore[arg-type]
    result = runner.invoke(app, ["data", "stats", "-d", "canonical-files", "--data-path", str(tmp_path),
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert f'"interactions": {shop.dataset.interactions.height}' in result.output


def test_canonical_files_refuses_two_formats_and_names_missing(tmp_path: Path) -> None:
    shop = generate_shop(seed=2, n_customers=50)
    write_files(shop, tmp_path, "csv")
    write_files(shop, tmp_path, "parquet")
    cfg = load_dataset_config(CANONICAL)
    with pytest.raises(SchemaError, match=r"items exists as items\.csv and items\.parquet; keep one"):
        load_dataset(cfg, location=tmp_path)
    for p in [*tmp_path.glob("*.parquet"), tmp_path / "interactions.csv"]:
        p.unlink()
    with pytest.raises(SchemaError, match=r"interactions\{\.csv,\.csv\.gz,\.parquet\}: interactions file"):
        load_dataset(cfg, location=tmp_path)

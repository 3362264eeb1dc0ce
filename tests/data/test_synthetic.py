"""The synthetic shop: deterministic, schema-valid, and its planted structure is visible in raw data.

Why these tests: every model test that asserts "recovers the planted structure" relies on the
structure really being in the generated rows; here it is checked with plain counting, no model.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.data import _writers
from recsys.data.synthetic import (
    GroundTruth,
    ShopConfig,
    SyntheticShop,
    generate_shop,
    write_files,
    write_sqlite,
)
from recsys.dataset import Dataset
from recsys.schema import CUSTOMERS, INTERACTIONS, ITEMS


@pytest.fixture(scope="module")
def shop() -> SyntheticShop:
    return generate_shop(seed=7, n_customers=3000)


@pytest.fixture(scope="module")
def lines(shop: SyntheticShop) -> pl.DataFrame:
    """Purchase lines with the item's category."""
    ds = shop.dataset
    return ds.purchases.join(ds.items.select("item_id", "category"), on="item_id", how="left")


def follow_rate(lines: pl.DataFrame, a: str, b: str, days: int = 30) -> float:
    """Share of orders containing ``a`` followed by a purchase of ``b`` within ``days`` (strictly later)."""
    trig = lines.filter(pl.col("category") == a).select("customer_id", "order_id", t_a="ts").unique()
    after = lines.filter(pl.col("category") == b).select("customer_id", t_b="ts")
    hits = (
        trig.join(after, on="customer_id", how="left")
        .with_columns(hit=(pl.col("t_b") > pl.col("t_a")) & (pl.col("t_b") <= pl.col("t_a") + pl.duration(days=days)))
        .group_by("order_id")
        .agg(pl.col("hit").fill_null(False).any())
    )
    return float(hits["hit"].mean())  # type: ignore[arg-type]


def assert_valid(ds: Dataset, cfg: ShopConfig) -> None:
    assert dict(ds.interactions.schema) == INTERACTIONS
    assert dict(ds.items.schema) == ITEMS
    assert dict(ds.customers.schema) == CUSTOMERS
    inter, items, customers = ds.interactions, ds.items, ds.customers
    assert inter.height > 0
    assert not items["item_id"].is_duplicated().any()
    assert not customers["customer_id"].is_duplicated().any()
    assert inter["item_id"].is_in(items["item_id"].implode()).all()
    assert inter["customer_id"].is_in(customers["customer_id"].implode()).all()
    assert (inter["quantity"] > 0).all()
    assert inter.select(["customer_id", "item_id", "ts", "quantity", "event"]).null_count().sum_horizontal().item() == 0
    assert inter["event"].is_in(["purchase", "view"]).all()
    purchases = ds.purchases
    assert purchases["order_id"].null_count() == 0 and purchases["price"].null_count() == 0
    assert (purchases["price"] > 0).all()
    assert inter["ts"].min() >= cfg.start_datetime  # type: ignore[operator]
    assert inter["ts"].max() < cfg.end_datetime  # type: ignore[operator]
    joined = inter.join(customers, on="customer_id")
    assert (joined["ts"] >= joined["created_at"]).all(), "no interaction before the account exists"
    sizes = purchases.group_by("order_id").agg(
        n=pl.len(), c=pl.col("customer_id").n_unique(), t=pl.col("ts").n_unique(), i=pl.col("item_id").n_unique()
    )
    assert sizes["n"].min() >= 1 and sizes["n"].max() <= 5  # type: ignore[operator]
    assert (sizes["c"] == 1).all() and (sizes["t"] == 1).all() and (sizes["n"] == sizes["i"]).all()
    assert items["replenishable"].null_count() == items.height, "models must learn replenishability"
    assert items["category"].null_count() == 0 and (items["price"] > 0).all()


# ----------------------------------------------------------------------- determinism and API


def test_same_seed_same_frames() -> None:
    a = generate_shop(seed=3, n_customers=400)
    b = generate_shop(ShopConfig(seed=3, n_customers=400))
    assert a.dataset.interactions.equals(b.dataset.interactions)
    assert a.dataset.items.equals(b.dataset.items)
    assert a.dataset.customers.equals(b.dataset.customers)
    assert a.truth == b.truth
    assert a.dataset.fingerprint() == b.dataset.fingerprint()


def test_different_seeds_differ() -> None:
    a = generate_shop(seed=3, n_customers=400)
    b = generate_shop(seed=4, n_customers=400)
    assert not a.dataset.interactions.equals(b.dataset.interactions)
    assert not a.dataset.items.equals(b.dataset.items)
    assert a.dataset.fingerprint()["sha256"] != b.dataset.fingerprint()["sha256"]


def test_overrides_apply_to_config() -> None:
    base = ShopConfig(seed=5, n_customers=100)
    shop = generate_shop(base, n_customers=150)
    assert shop.config == ShopConfig(seed=5, n_customers=150)
    assert shop.dataset.customers.height == 150
    assert shop.dataset.source == "synthetic(seed=5,n_customers=150,n_items=600)"
    assert "days=30" in generate_shop(seed=1, n_customers=20, days=30).dataset.source


def test_default_config_is_the_documented_one() -> None:
    cfg = ShopConfig()
    assert (cfg.seed, cfg.n_customers, cfg.n_items, cfg.days) == (0, 2000, 600, 365)
    assert cfg.start_datetime == datetime(2025, 1, 1)
    with pytest.raises(Exception):
        cfg.seed = 1  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    "kwargs",
    [{"n_customers": 0}, {"n_items": 5}, {"days": 0}, {"consent_rate": 1.5}, {"tier_shares": (0, 0, 0, 0)},
     {"complement_strength": 10.0}, {"style_concentration": 0.0}],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ShopConfig(**kwargs)  # type: ignore[arg-type]


def test_for_interactions_targets_size() -> None:
    cfg = ShopConfig.for_interactions(30_000, seed=2)
    n = generate_shop(cfg).dataset.interactions.height
    assert abs(n - 30_000) / 30_000 < 0.1
    with pytest.raises(TypeError):
        ShopConfig.for_interactions(1000, n_customers=10)


# ------------------------------------------------------------------------- schema and content


def test_schema_and_referential_integrity(shop: SyntheticShop) -> None:
    assert_valid(shop.dataset, shop.config)
    assert (shop.dataset.interactions["event"] == "purchase").all()


def test_catalogue_and_customers_look_like_a_shop(shop: SyntheticShop) -> None:
    items, customers = shop.dataset.items, shop.dataset.customers
    assert items.height == 600 and customers.height == 3000
    assert items["item_id"].str.contains(r"^I\d{5}$").all()
    assert customers["customer_id"].str.contains(r"^C\d{6}$").all()
    assert shop.dataset.interactions["order_id"].str.contains(r"^O\d{7}$").all()
    assert set(items["category"].unique()) == set(shop.truth.categories)
    assert len(shop.truth.categories) >= 20
    # Human-readable names that contain the category.
    assert items.select(pl.col("name").str.contains(pl.col("category"), literal=True).all()).item()
    assert items["department"].null_count() == 0 and items["brand"].null_count() == 0
    median = items.group_by("category").agg(pl.col("price").median()).to_dict(as_series=False)
    price = dict(zip(median["category"], median["price"], strict=True))
    assert price["belts"] < price["trousers"] < price["coats"] and price["socks"] < price["belts"]
    assert 0.9 < items["in_stock"].mean() < 0.99  # type: ignore[operator]
    assert 0.65 < customers["email_consent"].mean() < 0.75  # type: ignore[operator]
    q = shop.dataset.interactions["quantity"]
    assert (q == 1).mean() > 0.8 and set(q.unique().to_list()) <= {1.0, 2.0}  # type: ignore[operator]


def test_truth_describes_the_customers(shop: SyntheticShop) -> None:
    truth = shop.truth
    assert isinstance(truth, GroundTruth)
    ids = set(shop.dataset.customers["customer_id"])
    assert set(truth.segments) == ids and set(truth.customer_styles) == ids
    assert set(truth.segments.values()) == {"vip", "regular", "occasional", "one_time"}
    assert truth.replenishable == {"socks": 60.0, "underwear": 90.0}
    assert truth.complement_delay_days == (3.0, 30.0)
    triggers, targets = set(truth.complements), {c for d in truth.complements.values() for c in d}
    assert not triggers & targets, "a complement must never trigger (no reverse edge, no chain)"
    assert "trousers" not in truth.complements.get("belts", {})


# ------------------------------------------------------------------------- planted structure


@pytest.mark.parametrize(
    ("trigger", "target"), [("trousers", "belts"), ("shirts", "ties"), ("dresses", "bags"), ("jackets", "scarves")]
)
def test_complements_are_directional(lines: pl.DataFrame, trigger: str, target: str) -> None:
    forward = follow_rate(lines, trigger, target)
    backward = follow_rate(lines, target, trigger)
    assert forward > 0.2
    assert forward > 2 * backward, (forward, backward)


def test_complements_come_from_the_planting() -> None:
    on = generate_shop(seed=11, n_customers=2000)
    off = generate_shop(seed=11, n_customers=2000, complement_strength=0.0)

    def rate(s: SyntheticShop) -> float:
        p = s.dataset.purchases.join(s.dataset.items.select("item_id", "category"), on="item_id")
        return follow_rate(p, "trousers", "belts")

    assert rate(on) > 3 * rate(off)


def test_complement_follow_ups_fall_in_the_delay_window(lines: pl.DataFrame, shop: SyntheticShop) -> None:
    lo, hi = shop.truth.complement_delay_days
    trig = lines.filter(pl.col("category") == "trousers").select("customer_id", t_a="ts").unique()
    belts = lines.filter(pl.col("category") == "belts").select("customer_id", t_b="ts")
    gaps = (
        trig.join(belts, on="customer_id")
        .with_columns(days=(pl.col("t_b") - pl.col("t_a")).dt.total_seconds() / 86_400)
        .filter((pl.col("days") > 0) & (pl.col("days") <= 60))["days"]
    )
    in_window = ((gaps >= lo) & (gaps <= hi)).mean()
    assert in_window > 0.75  # type: ignore[operator]


def test_same_order_co_purchase(lines: pl.DataFrame) -> None:
    orders = lines.group_by("order_id").agg(
        shirts=(pl.col("category") == "shirts").any(), ties=(pl.col("category") == "ties").any()
    )
    with_shirts = orders.filter(pl.col("shirts"))["ties"].mean()
    without = orders.filter(~pl.col("shirts"))["ties"].mean()
    assert with_shirts > 0.25 and with_shirts > 5 * without  # type: ignore[operator]


@pytest.mark.parametrize("category", ["socks", "underwear"])
def test_replenishment_interval(lines: pl.DataFrame, shop: SyntheticShop, category: str) -> None:
    planted = shop.truth.replenishable[category]
    repeats = (
        lines.filter(pl.col("category") == category)
        .select("customer_id", "ts", "item_id")
        .unique(["customer_id", "ts"])
        .sort("customer_id", "ts")
        .with_columns(
            gap=pl.col("ts").diff().over("customer_id").dt.total_seconds() / 86_400,
            same=pl.col("item_id") == pl.col("item_id").shift().over("customer_id"),
        )
        .drop_nulls("gap")
    )
    assert repeats.height > 200
    assert abs(repeats["gap"].median() - planted) / planted < 0.25  # type: ignore[operator]
    assert repeats["same"].mean() > 0.4  # type: ignore[operator]  # buy-again: often the same item

    def regulars(cat: str) -> float:  # share of the category's buyers who bought it on ≥ 3 occasions
        per = lines.filter(pl.col("category") == cat).group_by("customer_id").agg(n=pl.col("ts").n_unique())
        return float((per["n"] >= 3).mean())  # type: ignore[arg-type]

    assert regulars(category) > 2 * regulars("coats")


def test_value_tiers(lines: pl.DataFrame, shop: SyntheticShop) -> None:
    per_customer = lines.group_by("customer_id").agg(
        revenue=(pl.col("price") * pl.col("quantity")).sum(), orders=pl.col("order_id").n_unique()
    )
    revenue = per_customer["revenue"].sort(descending=True)
    top = revenue.head(max(1, revenue.len() // 20)).sum() / revenue.sum()
    assert top > 0.25, f"top 5% of customers hold only {top:.0%} of revenue"
    one_time = (per_customer["orders"] == 1).mean()
    assert one_time > 0.25  # type: ignore[operator]
    tiers = pl.DataFrame({"customer_id": list(shop.truth.segments), "tier": list(shop.truth.segments.values())})
    mean_orders = dict(
        per_customer.join(tiers, on="customer_id").group_by("tier").agg(pl.col("orders").mean()).iter_rows()
    )
    assert mean_orders["vip"] > mean_orders["regular"] > mean_orders["occasional"] > mean_orders["one_time"]


def test_seasonality(lines: pl.DataFrame, shop: SyntheticShop) -> None:
    month = lines.with_columns(m=pl.col("ts").dt.month())

    def share(category: str, months: list[int]) -> float:
        window = month.filter(pl.col("m").is_in(months))
        return float((window["category"] == category).mean())  # type: ignore[arg-type]

    summer, winter = [6, 7, 8], [12, 1, 2]
    assert share("swimwear", summer) > 3 * share("swimwear", winter)
    assert share("shorts", summer) > 2 * share("shorts", winter)
    assert share("coats", winter) > 2 * share("coats", summer)
    assert shop.truth.seasonality["swimwear"] in summer and shop.truth.seasonality["coats"] in winter


def test_views_are_optional_and_valid() -> None:
    shop = generate_shop(seed=2, n_customers=300, views_per_purchase=1.0)
    inter = shop.dataset.interactions
    views = inter.filter(pl.col("event") == "view")
    assert views.height > 0 and views["order_id"].null_count() == views.height
    assert_valid(shop.dataset, shop.config)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_customers=st.integers(1, 60),
    n_items=st.integers(20, 90),
    days=st.integers(1, 400),
    views=st.sampled_from([0.0, 0.7]),
    month=st.integers(1, 12),
)
def test_any_small_shop_is_valid(seed: int, n_customers: int, n_items: int, days: int, views: float,
                                 month: int) -> None:
    cfg = ShopConfig(seed=seed, n_customers=n_customers, n_items=n_items, days=days,
                     start=datetime(2024, month, 1).date(), views_per_purchase=views)
    shop = generate_shop(cfg)
    assert_valid(shop.dataset, cfg)
    assert shop.dataset.items.height == n_items and shop.dataset.customers.height == n_customers


# ---------------------------------------------------------------------------------- writers


@pytest.fixture(scope="module")
def small() -> SyntheticShop:
    return generate_shop(seed=9, n_customers=200, views_per_purchase=0.3)


def _read(path: Path, table: str) -> pl.DataFrame:
    schema = {"interactions": INTERACTIONS, "items": ITEMS, "customers": CUSTOMERS}[table]
    if path.name.endswith(".parquet"):
        return pl.read_parquet(path)
    return pl.read_csv(path, schema=schema)


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_write_files_round_trip(tmp_path: Path, small: SyntheticShop, fmt: str) -> None:
    written = write_files(small, tmp_path / "out", fmt)  # type: ignore[arg-type]
    assert {p.name for p in written.values()} == {f"{t}.{fmt}" for t in ("interactions", "items", "customers")}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written.values())
    ds = small.dataset
    for table, frame in (("interactions", ds.interactions), ("items", ds.items), ("customers", ds.customers)):
        back = _read(written[table], table)
        assert back.equals(frame), table


def test_write_files_accepts_a_dataset_and_replaces(tmp_path: Path, small: SyntheticShop) -> None:
    (tmp_path / "keep.txt").write_text("other file")
    write_files(generate_shop(seed=1, n_customers=20).dataset, tmp_path)
    write_files(small.dataset, tmp_path, "csv")
    assert (tmp_path / "keep.txt").read_text() == "other file"
    assert pl.read_csv(tmp_path / "items.csv", schema=ITEMS).equals(small.dataset.items)
    with pytest.raises(ValueError):
        write_files(small, tmp_path, "xlsx")  # type: ignore[arg-type]


def test_write_files_is_atomic(tmp_path: Path, small: SyntheticShop, monkeypatch: pytest.MonkeyPatch) -> None:
    write_files(generate_shop(seed=1, n_customers=20), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = _writers._write_one

    def failing(frame: pl.DataFrame, path: Path, fmt: str) -> None:
        if path.name.startswith("customers"):
            raise OSError("disk full")
        real(frame, path, fmt)  # type: ignore[arg-type]

    monkeypatch.setattr(_writers, "_write_one", failing)
    with pytest.raises(OSError, match="disk full"):
        write_files(small, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old files intact, no temp left


def test_write_sqlite_round_trip(tmp_path: Path, small: SyntheticShop) -> None:
    path = write_sqlite(small, tmp_path / "shop.db")
    ds = small.dataset
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"interactions", "items", "customers"}
        ts, in_stock = conn.execute("SELECT ts, 1 FROM interactions LIMIT 1").fetchone()
        assert len(ts) == len("2025-01-01 00:00:00.000000") and ts[10] == " "
        assert {r[0] for r in conn.execute("SELECT DISTINCT in_stock FROM items")} <= {0, 1}
        for table, frame in (("interactions", ds.interactions), ("items", ds.items), ("customers", ds.customers)):
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            back = pl.DataFrame(rows, schema=list(frame.columns), orient="row", infer_schema_length=None)
            casts = [
                pl.col(c).str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us") if isinstance(t, pl.Datetime)
                else pl.col(c).cast(t)
                for c, t in frame.schema.items()
            ]
            assert back.select(casts).equals(frame), table


def test_write_sqlite_replaces_atomically(tmp_path: Path, small: SyntheticShop,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shop.db"
    write_sqlite(generate_shop(seed=1, n_customers=20), path)
    write_sqlite(small, path)  # replaced, not appended
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 200
    before = path.read_bytes()

    def boom(frame: pl.DataFrame) -> pl.DataFrame:
        raise RuntimeError("boom")

    monkeypatch.setattr(_writers, "_sqlite_ready", boom)
    with pytest.raises(RuntimeError):
        write_sqlite(small, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["shop.db"]

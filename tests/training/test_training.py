"""The training pipeline end to end on the synthetic shop: leak-free, honest metrics, registry rules."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recsys.bundle import Bundle
from recsys.config import GENERATORS, TrainConfig
from recsys.data.synthetic import generate_shop
from recsys.dataset import Dataset
from recsys.exceptions import PromotionRefusedError
from recsys.registry import Registry
from recsys.training import TrainResult, train

LEAK = "LEAK-ITEM"


def _cfg(**kw) -> TrainConfig:  # type: ignore[no-untyped-def]
    base = {
        "dataset": "synthetic",
        "ranker": {"max_iter": 30},
        "generators": {name: {"candidates": 30} for name in GENERATORS},
    }
    base.update(kw)
    return TrainConfig.model_validate(base)


def _with_leak(ds: Dataset, holdout_days: float) -> Dataset:
    """Plant an item bought by many customers only at/after the cut-off."""
    cutoff = ds.interactions["ts"].max() - timedelta(days=holdout_days)
    buyers = ds.interactions["customer_id"].unique().sort().head(150).to_list()
    leak = pl.DataFrame({
        "customer_id": buyers * 2,
        "item_id": [LEAK] * (2 * len(buyers)),
        "ts": [cutoff + timedelta(hours=i % 300) for i in range(2 * len(buyers))],
        "order_id": [f"LEAK{i}" for i in range(2 * len(buyers))],
    })
    items = pl.concat([ds.items, pl.DataFrame({"item_id": [LEAK], "category": ["trousers"], "price": [10.0]})],
                      how="diagonal_relaxed")
    return Dataset(pl.concat([ds.interactions, leak], how="diagonal_relaxed"), items, ds.customers, ds.source)


@pytest.fixture(scope="module")
def trained() -> tuple[Dataset, TrainResult]:
    ds = _with_leak(generate_shop(seed=1, n_customers=1500).dataset, 14)
    # two ranker windows: the leak test below then also covers the earlier window's generators;
    # refit=False: these tests check the evaluated components themselves
    return ds, train(ds, _cfg(ranker={"max_iter": 30, "windows": 2}), progress=False, refit=False)


def test_ranker_trains_on_two_stacked_windows(trained) -> None:  # type: ignore[no-untyped-def]
    _, result = trained
    info = result.info["ranker"]
    assert info["windows"] == 2
    assert "error" not in info
    assert info["positives"] > 0 and info["new_only"]["positives"] > 0


def test_metrics_table_has_served_and_every_baseline(trained) -> None:  # type: ignore[no-untyped-def]
    _, result = trained
    models = set(result.metrics["model"])
    for name in ("served", "served_new_only", "baseline:popularity_global", "baseline:popularity_decayed",
                 "baseline:buy_again_then_popular", "baseline:item_knn", "baseline:als"):
        assert name in models
    assert set(result.metrics["variant"]) == {"all", "new", "category"}
    served = result.headline("all.map")
    assert served is not None and 0 < served <= 1


def test_no_interaction_after_cutoff_reaches_any_component(trained) -> None:  # type: ignore[no-untyped-def]
    ds, result = trained
    hybrid = result.bundle.hybrid
    cutoff = result.info["split"]["cutoff"]
    assert hybrid.history.frame["ts"].max() < cutoff
    assert LEAK not in hybrid.history.frame["item_id"].to_list()
    pop = hybrid.generators["popularity"]
    assert pop.scores_[pop.item_ids_.get(LEAK)] == 0  # type: ignore[attr-defined]
    stats = hybrid.stats.items_.filter(pl.col("item_id") == LEAK)
    assert stats["i_pop"].to_list() == [0.0]
    customers = hybrid.history.customers.ids.tolist()
    recs = hybrid.recommend(customers, 12)
    assert LEAK not in set(recs["item_id"])
    # the leak is 300 test-window purchases: had it been seen, popularity alone would rank it first
    assert result.bundle.manifest["info"]["split"]["test_rows"] >= 300


def test_metric_matches_brute_force_on_cli_output(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Independent MAP@12 from `recsys recommend`'s file equals the pipeline's number for the served list."""
    ds, result = trained
    registry = Registry()
    tag = registry.save(result.bundle.write_into, metadata={"headline": result.bundle.manifest["headline"]})
    cutoff = result.info["split"]["cutoff"]
    test = ds.purchases.filter(pl.col("ts") >= cutoff)
    customers = sorted(set(test["customer_id"]))
    (tmp_path / "customers.txt").write_text("\n".join(customers))
    from pipelines.cli import app

    out = tmp_path / "recs.parquet"
    res = CliRunner().invoke(app, ["recommend", "--model", tag, "--customers", str(tmp_path / "customers.txt"),
                                   "--n", "12", "--out", str(out)])
    assert res.exit_code == 0, res.output
    recs = pl.read_parquet(out)
    # the stable interface: these first, in this order; new columns only ever added after them
    assert recs.columns[:5] == ["customer_id", "rank", "item_id", "score", "reason_type"]
    truth: dict[str, set[str]] = {}
    for c, i in test.select("customer_id", "item_id").iter_rows():
        truth.setdefault(c, set()).add(i)
    lists: dict[str, list[str]] = {}
    for c, _, i in recs.sort("customer_id", "rank").select("customer_id", "rank", "item_id").iter_rows():
        lists.setdefault(c, []).append(i)
    aps = []
    for c, rel in truth.items():
        hits, s = 0, 0.0
        for r, item in enumerate(lists.get(c, [])[:12], start=1):
            if item in rel:
                hits += 1
                s += hits / r
        aps.append(s / min(12, len(rel)))
    brute = sum(aps) / len(aps)
    assert brute == pytest.approx(result.headline("all.map"), abs=1e-9)


def test_bundle_roundtrip_same_recommendations(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, result = trained
    result.bundle.save(tmp_path / "b")
    loaded = Bundle.load(tmp_path / "b")
    customers = result.bundle.hybrid.history.customers.ids[:50].tolist()
    a = result.bundle.hybrid.recommend(customers, 12)
    b = loaded.hybrid.recommend(customers, 12)
    assert a.select("customer_id", "rank", "item_id").equals(b.select("customer_id", "rank", "item_id"))
    assert loaded.manifest["data"]["sha256"] and loaded.manifest["versions"]["implicit"]


def test_promotion_refuses_worse_accepts_better(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a private promotion history: other tests (the service) promote versions in the shared test store
    monkeypatch.setattr(Registry, "state_file", property(lambda self: tmp_path / "registry.json"))
    reg = Registry()
    write = lambda p: (p / "x").write_text("x")  # noqa: E731
    good = reg.save(write, metadata={"headline": {"all.map": 0.30}}, version="promo-good")
    worse = reg.save(write, metadata={"headline": {"all.map": 0.20}}, version="promo-worse")
    better = reg.save(write, metadata={"headline": {"all.map": 0.35}}, version="promo-better")
    reg.promote(good, metric="all.map", force=True)
    with pytest.raises(PromotionRefusedError, match=r"holdout all.map 0.2000 is worse than .* 0.3000"):
        reg.promote(worse, metric="all.map")
    assert reg.promoted().tag == good  # type: ignore[union-attr]
    reg.promote(better, metric="all.map")
    assert reg.promoted().tag == better  # type: ignore[union-attr]
    reg.promote(worse, metric="all.map", force=True)
    assert reg.rollback().tag == better
    assert reg.rollback().tag == good
    with pytest.raises(PromotionRefusedError, match="nothing to roll back"):
        reg.rollback()


def _with_last_day_purchase(ds: Dataset) -> tuple[Dataset, str, str]:
    """A purchase stamped after every other one, of an item the customer never bought before."""
    end = ds.interactions["ts"].max() + timedelta(hours=1)
    customer = ds.purchases["customer_id"].value_counts(sort=True)["customer_id"][0]
    bought = set(ds.purchases.filter(pl.col("customer_id") == customer)["item_id"])
    item = next(i for i in ds.items["item_id"].to_list() if i not in bought)
    row = pl.DataFrame({"customer_id": [customer], "item_id": [item], "ts": [end], "order_id": ["LASTDAY"],
                        "event": ["purchase"], "quantity": [1.0]})
    return Dataset(pl.concat([ds.interactions, row], how="diagonal_relaxed"), ds.items, ds.customers,
                   ds.source), customer, item


@pytest.fixture(scope="module")
def last_day() -> tuple[Dataset, str, str]:
    return _with_last_day_purchase(generate_shop(seed=2, n_customers=800).dataset)


def test_production_bundle_knows_the_last_day(last_day) -> None:  # type: ignore[no-untyped-def]
    """Default: evaluate on the holdout, then refit on everything; a last-day purchase reaches the served
    history and buy-again, and the manifest states the evaluation cut-off beside the data end."""
    ds, customer, item = last_day
    result = train(ds, _cfg(), progress=False)
    manifest = result.bundle.manifest
    end = ds.purchases["ts"].max()
    assert manifest["evaluated"] is True and manifest["data_end"] == end
    assert manifest["evaluation_cutoff"] < end and manifest["headline"]["all.map"] > 0
    hybrid = result.bundle.hybrid
    assert hybrid.reference_time == end
    assert hybrid.history.of(customer).filter(pl.col("ts") == end)["item_id"].to_list() == [item]
    ids, _ = hybrid.generators["buy_again"].recommend(customer, 60)
    assert item in ids.tolist()
    ranked = hybrid.rank([customer], hybrid.as_of).filter(pl.col("item_id") == item)
    assert ranked["rank_buy_again"].is_not_null().all() and ranked["ci_count"].to_list() == [1.0]


def test_no_eval_retrain_fits_everything_and_is_not_promotable(last_day, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ds, customer, item = last_day
    result = train(ds, _cfg(), progress=False, evaluate=False)
    manifest = result.bundle.manifest
    assert manifest["evaluated"] is False and manifest["headline"] == {} and result.metrics.height == 0
    assert manifest["evaluation_cutoff"] is None
    assert result.info["ranker"]["windows"] == 1 and "error" not in result.info["ranker"]
    assert result.info["ranker"]["window_end"] > ds.purchases["ts"].max()  # the newest purchase is a label
    assert result.bundle.hybrid.history.of(customer)["item_id"].to_list()[-1] == item
    monkeypatch.setattr(Registry, "state_file", property(lambda self: tmp_path / "registry.json"))
    reg = Registry()
    evaluated = reg.save(lambda p: (p / "x").write_text("x"), metadata={"headline": {"all.map": 0.3}},
                         version="nightly-evaluated")
    nightly = reg.save(result.bundle.write_into, metadata={"headline": {}, "evaluated": False,
                                                           "evaluation_cutoff": None},  # as `recsys train` gives
                       version="nightly-noeval")
    reg.promote(evaluated, metric="all.map", force=True)
    with pytest.raises(PromotionRefusedError, match="--no-eval"):
        reg.promote(nightly, metric="all.map")
    assert reg.promote(nightly, metric="all.map", force=True).tag == nightly


def test_shop_without_categories_trains_and_evaluates() -> None:
    """The category models switch off, and so does the category variant of the evaluation."""
    ds = generate_shop(seed=3, n_customers=600).dataset
    ds = Dataset(ds.interactions, ds.items.with_columns(pl.lit(None, pl.String).alias("category")), ds.customers,
                 ds.source)
    result = train(ds, _cfg(), progress=False)
    assert set(result.metrics["variant"]) == {"all", "new"}
    assert {"category_complements", "category_affinity"} <= set(result.info["skipped_generators"])
    assert result.headline("all.map") is not None


def test_window_fits_defer_what_waits_for_a_query() -> None:
    """Generators fitted for a sample of customers (ranker windows, evaluation) take their class's
    ``window_params`` (TIFU-KNN searches neighbours on query); a configured value still wins."""
    from recsys.training._pipeline import fit_generators

    ds = generate_shop(seed=5, n_customers=300).dataset
    cfg = _cfg(generators={"tifu_knn": {"candidates": 10}, "popularity": {"candidates": 5}})
    assert fit_generators(ds, cfg, sample=True, progress=False)[0]["tifu_knn"].search_neighbours == "on_query"
    assert fit_generators(ds, cfg, progress=False)[0]["tifu_knn"].search_neighbours == "at_fit"
    pinned = _cfg(generators={"tifu_knn": {"candidates": 10, "params": {"search_neighbours": "at_fit"}},
                              "popularity": {"candidates": 5}})
    assert fit_generators(ds, pinned, sample=True, progress=False)[0]["tifu_knn"].search_neighbours == "at_fit"


def test_baselines_without_buy_again_then_popular() -> None:
    """A config listing other baselines still reports the ones the report compares against."""
    ds = generate_shop(seed=4, n_customers=500).dataset
    result = train(ds, _cfg(baselines=["popularity_global"]), progress=False, refit=False)
    assert "baseline:buy_again_then_popular" in set(result.metrics["model"])


def test_cli_no_eval_saves_a_bundle_that_states_it(tmp_path: Path) -> None:
    """`recsys train --no-eval` end to end: saved with evaluated=false in the store's metadata."""
    from pipelines.cli import app

    res = CliRunner().invoke(app, ["train", "--no-eval", "--no-progress", "--store", f"sqlite:///{tmp_path}/s.db"])
    assert res.exit_code == 0, res.output
    assert "not evaluated (--no-eval)" in res.output
    tag = next(line.split()[1] for line in res.output.splitlines() if line.startswith("saved "))
    version = Registry().get(tag)
    assert version.metadata["evaluated"] is False and "evaluation_cutoff" not in version.metadata
    manifest = Bundle.load(version.path).manifest
    assert manifest["evaluated"] is False and manifest["data_end"]


def test_a_half_copied_version_is_never_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save killed while BentoML copies files into the store leaves a partial version: it is skipped
    by 'latest' and refused by name, never loaded half-written."""
    from recsys.exceptions import BundleError

    reg = Registry()
    whole = reg.save(lambda p: (p / "a.bin").write_bytes(b"x" * 100), metadata={}, version="whole-1")
    partial = reg.save(lambda p: [(p / "a.bin").write_bytes(b"y" * 100), (p / "b.bin").write_bytes(b"z" * 50)],
                       metadata={}, version="partial-2")
    assert reg.get(partial).metadata["files"] == {"a.bin": 100, "b.bin": 50}
    path = reg.get(partial).path
    (path / "b.bin").write_bytes(b"z" * 10)  # what a kill mid-copy leaves
    assert partial not in [v.tag for v in reg.versions()] and whole in [v.tag for v in reg.versions()]
    with pytest.raises(BundleError, match="incomplete: b.bin has 10 bytes"):
        reg.get(partial)
    (path / "b.bin").unlink()
    with pytest.raises(BundleError, match="b.bin is missing"):
        reg.resolve(partial)

"""Email-pick campaigns: consent, pressure, idempotence, shards, holdout, picks with reasons, KPIs.

One small bundle is trained per module on the synthetic shop (seed 0) and saved in the test BentoML
home; every run uses a real SQLite store in ``tmp_path`` (and PostgreSQL in the ``postgres`` test).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import typer
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from recsys.bundle import Bundle
from recsys.campaigns import (
    EXCLUSION_REASONS,
    PICK_COLUMNS,
    Campaign,
    CampaignIndex,
    CampaignRun,
    build_audience,
    campaign_from_dict,
    campaign_kpis,
    category_propensity,
    default_now,
    holdout_mask,
    load_campaign,
    parse_shard,
    plan_campaign,
    run_campaign,
    run_campaigns,
    shard_mask,
    summary_path,
)
from recsys.campaigns._batches import _pool, _rules_history
from recsys.campaigns._context import PickContext
from recsys.campaigns._run import _campaign_rules
from recsys.campaigns._strategies import CHECKED_STRATEGIES, candidates
from recsys.campaigns._util import codes_of, rank_within
from recsys.config import GENERATORS, TrainConfig
from recsys.data.synthetic import generate_shop
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError, UnknownIdError
from recsys.registry import Registry
from recsys.rules import load_placements
from recsys.store import Store
from recsys.training import train

ROOT = Path(__file__).resolve().parents[2]
CAMPAIGNS = ROOT / "configs" / "campaigns"
PLACEMENTS = load_placements(ROOT / "configs" / "placements.yaml")


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def data() -> Dataset:
    return generate_shop(seed=0).dataset


@pytest.fixture(scope="module")
def saved(data: Dataset) -> tuple[str, Path]:
    """(tag, path) of a small bundle trained once for this module and saved in the test model store."""
    cfg = TrainConfig.model_validate({
        "ranker": {"max_iter": 30},
        "generators": {name: {"candidates": 30} for name in GENERATORS if name not in ("bpr", "als")},
    })
    bundle = train(data, cfg, progress=False).bundle
    registry = Registry()
    tag = registry.save(bundle.write_into, metadata={"dataset": data.source},
                        version=f"campaigns-{uuid.uuid4().hex[:8]}")
    return tag, registry.get(tag).path


@pytest.fixture(scope="module")
def bundle(saved: tuple[str, Path]) -> Bundle:
    """Shared by strategies that never fold events into the bundle (everything but replenishment/winback)."""
    return Bundle.load(saved[1])


@pytest.fixture(scope="module")
def now(data: Dataset) -> datetime:
    return default_now(data)


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def _campaign(**kw: object) -> Campaign:
    raw: dict[str, object] = {
        "name": "t", "audience": {"all_customers": True}, "strategy": "welcome", "n_picks": 3,
        "frequency_cap": None, "resend_window_days": None, "holdout_share": 0.0,
    }
    raw.update(kw)
    return campaign_from_dict(raw, source="test.yaml")


def _plan(campaign: Campaign, bundle: Bundle, data: Dataset, now: datetime, **kw: Any) -> CampaignRun:
    return plan_campaign(campaign, bundle, data, placements=PLACEMENTS, now=now, **kw)


def _run(campaign: Campaign, bundle: Bundle, data: Dataset, now: datetime, store: Store,
         **kw: Any) -> CampaignRun:
    return run_campaign(campaign, bundle, data, placements=PLACEMENTS, store=store, now=now, **kw)


def _purchasers(data: Dataset, k: int) -> list[str]:
    return data.purchases["customer_id"].unique().sort().head(k).to_list()


def _excluded(run: CampaignRun, reason: str) -> set[str]:
    return set(run.excluded.filter(pl.col("reason") == reason)["customer_id"].to_list())


def _recipients(run: CampaignRun) -> set[str]:
    return set(run.picks["customer_id"].to_list())


def _pairs(frame: pl.DataFrame) -> set[tuple[str, str]]:
    return set(frame.select("customer_id", "item_id").iter_rows())


# ------------------------------------------------------------------------------ config
@pytest.mark.parametrize("path", sorted(CAMPAIGNS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_campaign_files_validate(path: Path) -> None:
    campaign = load_campaign(path)
    assert campaign.name == path.stem
    assert campaign.placement in PLACEMENTS


@pytest.mark.parametrize(("body", "field"), [
    ("name: x\naudience: {all_customers: true}\nstrategy: welcome\nholdout_shar: 0.1\n", "holdout_shar"),
    ("name: x\naudience: {bought_category: {category: trousers, within_days: 0}}\nstrategy: complements\n",
     "audience.bought_category.within_days"),
    ("name: x\naudience: {segment: [vip]}\nstrategy: winback\n", "audience.segment.0"),
    ("name: x\naudience: {all_customers: true}\nstrategy: {kind: welcome, price_ratio: [1, 2]}\n",
     "strategy"),
    ("name: x\naudience: {}\nstrategy: welcome\n", "audience"),
    ("name: x\naudience: {all_customers: true}\nstrategy: teleport\n", "strategy.kind"),
    ("name: x\naudience: {all_customers: true}\nstrategy: welcome\nn_picks: 2\nmin_picks: 3\n", "<root>"),
])
def test_config_errors_name_the_file_and_the_field(tmp_path: Path, body: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert str(path) in str(err.value)
    assert f"  {field}:" in str(err.value)


def test_run_time_config_errors_name_the_file_and_the_field(tmp_path: Path, bundle: Bundle, data: Dataset,
                                                            now: datetime) -> None:
    cases = {
        "audience.bought_category.category":
            "audience: {bought_category: {category: trouser, within_days: 9}}\nstrategy: complements\n",
        "placement": "audience: {all_customers: true}\nstrategy: welcome\nplacement: newsletter\n",
        "exclude.categories":
            "audience: {all_customers: true}\nstrategy: welcome\nexclude: {categories: [belt]}\n",
        "audience.customers_file": "audience: {customers_file: missing.txt}\nstrategy: welcome\n",
    }
    for field, body in cases.items():
        path = tmp_path / "c.yaml"
        path.write_text("name: x\n" + body)
        with pytest.raises(ConfigError) as err:
            _plan(load_campaign(path), bundle, data, now)
        assert str(path) in str(err.value) and f"  {field}:" in str(err.value), field


def test_shard_spec_is_validated() -> None:
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "x", "1/0"):
        with pytest.raises(ConfigError, match="shard"):
            parse_shard(bad)


# ------------------------------------------------------------------------------ consent and pressure
def _consent_setup(tmp_path: Path, data: Dataset, default: bool) -> tuple[Dataset, Campaign, list[str]]:
    a, b, c, d, e, f = _purchasers(data, 6)
    flags = {a: True, b: False, c: None, e: False, f: True}
    customers = data.customers.filter(pl.col("customer_id") != d).with_columns(
        pl.col("customer_id").replace_strict(flags, default=pl.col("email_consent"), return_dtype=pl.Boolean)
        .alias("email_consent"))
    ds = Dataset(data.interactions, data.items, customers, data.source, consent_default=default)
    (tmp_path / "ids.txt").write_text("\n".join([a, b, c, d, e, f]) + "\n")
    (tmp_path / "campaign.yaml").write_text(
        "name: consent_check\naudience: {customers_file: ids.txt}\nstrategy: welcome\nn_picks: 2\n"
        "frequency_cap: null\nresend_window_days: null\n")
    return ds, load_campaign(tmp_path / "campaign.yaml"), [a, b, c, d, e, f]


@pytest.mark.parametrize("default", [False, True])
def test_consent_store_overrides_dataset_and_missing_uses_the_default(
        tmp_path: Path, bundle: Bundle, data: Dataset, now: datetime, store: Store, default: bool) -> None:
    ds, campaign, (a, b, c, d, e, f) = _consent_setup(tmp_path, data, default)
    store.set_consent({e: True, f: False})  # the store wins over the data set both ways
    run = _plan(campaign, bundle, ds, now, store=store)
    missing = {c, d}  # null in the data set, and absent from it
    denied = {b, f} | (set() if default else missing)
    assert _excluded(run, "consent") == denied
    assert _recipients(run) == {a, b, c, d, e, f} - denied
    assert run.summary["excluded"]["consent"] == len(denied)
    assert run.summary["audience"] == 6


def test_suppressed_and_erased_customers_are_left_out(tmp_path: Path, bundle: Bundle, data: Dataset,
                                                      now: datetime, store: Store) -> None:
    ds, campaign, (a, b, c, d, e, f) = _consent_setup(tmp_path, data, default=True)
    store.suppress([a], reason="bounced")
    store.erase([c])
    run = _plan(campaign, bundle, ds, now, store=store)
    assert _excluded(run, "suppression") == {a}
    assert _excluded(run, "erased") == {c}
    assert _excluded(run, "consent") == {b, e}  # no store overrides this time
    assert _recipients(run) == {d, f}
    counts = run.summary["excluded"]
    assert counts["suppression"] == 1 and counts["erased"] == 1 and counts["consent"] == 2
    assert sum(counts.values()) + run.summary["recipients"] == run.summary["audience"]


def test_frequency_cap_spans_campaigns_and_a_rerun_is_idempotent(bundle: Bundle, data: Dataset, now: datetime,
                                                                  store: Store) -> None:
    cap = {"max_emails": 1, "per_days": 7}
    camp_a = _campaign(name="camp_a", frequency_cap=cap, holdout_share=0.2,
                       audience={"bought_category": {"category": "trousers", "within_days": 90}})
    camp_b = _campaign(name="camp_b", frequency_cap=cap, strategy="upsell")
    run_a = _run(camp_a, bundle, data, now, store, run_id="a-1")
    sent_a, controls_a = _recipients(run_a), set(run_a.controls["customer_id"].to_list())
    assert sent_a and controls_a
    assert run_a.summary["logged_rows"] == run_a.picks.height + run_a.controls.height

    rows = store.count("send_log")
    # same run id: its own sends are not pressure
    again = _run(camp_a, bundle, data, now, store, run_id="a-1")
    assert again.summary["excluded"]["frequency_cap"] == 0
    assert again.summary["logged_rows"] == 0 and store.count("send_log") == rows
    assert again.picks.equals(run_a.picks) and again.controls.equals(run_a.controls)

    run_b = _run(camp_b, bundle, data, now, store, run_id="b-1")
    assert _excluded(run_b, "frequency_cap") == sent_a  # controls got no email: they do not count
    assert not _recipients(run_b) & sent_a
    loose = _campaign(name="camp_b", frequency_cap={"max_emails": 2, "per_days": 7}, strategy="upsell")
    relaxed = _plan(loose, bundle, data, now, store=store, run_id="b-2")
    assert relaxed.summary["excluded"]["frequency_cap"] == 0

    other = _plan(camp_a, bundle, data, now, store=store, run_id="a-2")  # a new email: the cap applies
    emailed = sent_a | _recipients(run_b)
    audience_a = set(build_audience(camp_a, data, now=now)["customer_id"])
    assert _excluded(other, "frequency_cap") == emailed & audience_a
    assert not _recipients(other) & emailed


def test_resend_window_never_repeats_an_item(bundle: Bundle, data: Dataset, now: datetime,
                                             store: Store) -> None:
    first = _run(_campaign(name="first", holdout_share=0.2), bundle, data, now, store, run_id="first-1")
    controls = first.controls
    assert first.picks.height and controls.height
    second = _plan(_campaign(name="second", resend_window_days=30), bundle, data, now, store=store)
    assert not _pairs(second.picks) & _pairs(first.picks)
    assert second.summary["resend_window_items_removed"] > 0
    # control customers were never emailed: their would-be picks stay allowed (same strategy → same items)
    again = second.picks.filter(pl.col("customer_id").is_in(controls["customer_id"].implode()))
    assert _pairs(again) == _pairs(controls)
    # without the window the same strategy repeats the very same items
    no_window = _plan(_campaign(name="second"), bundle, data, now, store=store)
    assert _pairs(no_window.picks) >= _pairs(first.picks)


def test_fill_pads_lists_but_never_with_recent_sends(bundle: Bundle, data: Dataset, now: datetime,
                                                     store: Store) -> None:
    first = _run(_campaign(name="first", n_picks=4), bundle, data, now, store, run_id="f-1")
    themed = _plan(_campaign(name="themed", n_picks=4, resend_window_days=30), bundle, data, now, store=store)
    padded = _plan(_campaign(name="padded", n_picks=4, resend_window_days=30, fill=True), bundle, data, now,
                   store=store)
    sizes = padded.picks.group_by("customer_id").len()["len"]
    assert sizes.min() == 4 and padded.picks.height > themed.picks.height
    assert "popular" in set(padded.picks["reason"]) and "popular" not in set(themed.picks["reason"])
    assert not _pairs(padded.picks) & _pairs(first.picks)


def test_segment_audiences_follow_the_segments_contract(bundle: Bundle, data: Dataset, now: datetime) -> None:
    ids = sorted(data.customers["customer_id"].to_list())
    stand_in = pl.DataFrame({
        "customer_id": ids,
        "value_segment": ["most_valuable" if i % 3 == 0 else "low_value" for i in range(len(ids))],
        "lifecycle": ["at_risk" if i % 2 == 0 else "loyal" for i in range(len(ids))],
        "churn_band": ["high" if i % 5 == 0 else "low" for i in range(len(ids))],
    })
    campaign = _campaign(audience={"segment": ["most_valuable"], "lifecycle": ["at_risk", "lapsed"],
                                   "churn_band": ["high"]})
    got = build_audience(campaign, data, now=now, segments=stand_in)["customer_id"].to_list()
    assert got == [c for i, c in enumerate(ids) if i % 30 == 0]
    # without a frame, recsys.segments computes one as of `now` (churn model fitted for churn_band)
    from recsys.segments import segments

    table = segments(data.with_interactions(data.interactions.filter(pl.col("ts") < now)), now=now)
    new = _campaign(audience={"lifecycle": ["new"]})
    expected = sorted(table.filter(pl.col("lifecycle") == "new")["customer_id"].to_list())
    assert build_audience(new, data, now=now)["customer_id"].to_list() == expected and expected
    bands = {b: set(build_audience(_campaign(audience={"churn_band": [b]}), data, now=now)["customer_id"])
             for b in ("low", "medium", "high")}
    assert all(bands.values())  # a churn model was fitted: every band is populated …
    assert set().union(*bands.values()) == set(table["customer_id"])  # … and they cover every customer
    assert sum(len(b) for b in bands.values()) == table.height


# ------------------------------------------------------------------------------ shards and holdout
def test_shards_partition_the_audience_exactly(bundle: Bundle, data: Dataset, now: datetime) -> None:
    campaign = _campaign(holdout_share=0.2)
    full = _plan(campaign, bundle, data, now, run_id="r")
    shards = [_plan(campaign, bundle, data, now, run_id="r", shard=f"{i}/3") for i in (1, 2, 3)]

    def members(run: CampaignRun) -> set[str]:
        return (set(run.excluded["customer_id"]) | set(run.picks["customer_id"])
                | set(run.controls["customer_id"]))

    parts = [members(s) for s in shards]
    assert all(p for p in parts)
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == full.summary["audience"]
    assert set().union(*parts) == members(full)
    for name in ("picks", "controls", "excluded"):
        joined = pl.concat([getattr(s, name) for s in shards]).sort(pl.all())
        assert joined.equals(getattr(full, name).sort(pl.all())), name

def test_shard_and_holdout_hashes_are_stable_across_versions() -> None:
    """Pinned values: changing the hash would silently move customers between shards and control groups."""
    ids = [f"C{i:06d}" for i in range(1, 9)]
    assert shard_mask(ids, (1, 3)).tolist() == [False, False, True, True, False, False, False, False]
    assert shard_mask(ids, (2, 3)).tolist() == [True, True, False, False, True, False, False, False]
    expected = [True, False, True, True, False, False, False, False]
    assert holdout_mask(ids, 0.5, campaign="a", run_id="r").tolist() == expected


def test_holdout_share_is_respected_and_controls_are_logged_not_sent(bundle: Bundle, data: Dataset,
                                                                     now: datetime, store: Store) -> None:
    campaign = _campaign(name="holdout_check", holdout_share=0.25)
    run = _run(campaign, bundle, data, now, store, run_id="h-1")
    controls = set(run.controls["customer_id"])
    treated = _recipients(run)
    share = len(controls) / (len(controls) + len(treated))
    assert len(controls) + len(treated) > 1000 and abs(share - 0.25) < 0.05
    assert not controls & treated
    assert _excluded(run, "holdout") == controls
    log = store.sends()
    assert set(log.filter(pl.col("control"))["customer_id"]) == controls
    assert set(log.filter(~pl.col("control"))["customer_id"]) == treated
    assert log.filter(pl.col("control")).height == run.controls.height
    same = _plan(campaign, bundle, data, now, run_id="h-1")
    other = _plan(campaign, bundle, data, now, run_id="h-2")
    assert set(same.controls["customer_id"]) == controls
    assert set(other.controls["customer_id"]) != controls


# ------------------------------------------------------------------------------ picks
def test_trousers_campaign_gives_belts_and_shoes_because_of_the_trousers(bundle: Bundle, data: Dataset,
                                                                          now: datetime) -> None:
    campaign = load_campaign(CAMPAIGNS / "trousers_to_belts_shoes.yaml")
    run = _plan(campaign, bundle, data, now)
    cat = dict(data.items.select("item_id", "category").iter_rows())
    window = data.purchases.filter((pl.col("ts") >= now - timedelta(days=30)) & (pl.col("ts") < now))
    bought = _pairs(window)
    trouser_buyers = {c for c, i in bought if cat[i] == "trousers"}
    assert run.summary["recipients"] >= 20
    assert _recipients(run) <= trouser_buyers
    assert {cat[i] for i in run.picks["item_id"]} == {"belts", "shoes"}
    assert set(run.picks["reason"]) <= {"complements_category", "bought_with"}
    for customer, source in run.picks.select("customer_id", "source_item_id").iter_rows():
        assert cat[source] == "trousers" and (customer, source) in bought
    assert run.picks.columns == list(PICK_COLUMNS)


@pytest.mark.parametrize("kind", ["complements", "replenishment", "upsell", "new_in_category", "welcome",
                                  "winback"])
def test_every_strategy_respects_the_email_rules(kind: str, saved: tuple[str, Path], data: Dataset,
                                                 now: datetime) -> None:
    bundle = Bundle.load(saved[1])  # replenishment and winback fold new purchases into it
    campaign = _campaign(strategy=kind, n_picks=4)
    run = _plan(campaign, bundle, data, now)
    picks = run.picks
    assert picks.height > 50, kind
    ranks = picks.group_by("customer_id").agg(pl.col("rank").sort())
    assert all(r == list(range(1, len(r) + 1)) and len(r) <= 4 for r in ranks["rank"].to_list())
    bought = _pairs(data.purchases.filter(pl.col("ts") < now))
    stock = dict(data.items.select("item_id", "in_stock").iter_rows())
    assert all(stock[i] is not False for i in picks["item_id"])
    if kind == "replenishment":
        assert set(picks["reason"]) == {"replenish_due"}
        assert (picks["item_id"] == picks["source_item_id"]).all()
        cats = dict(data.items.select("item_id", "category").iter_rows())
        assert {cats[i] for i in picks["item_id"]} <= {"socks", "underwear"}
    else:
        assert not _pairs(picks) & bought  # the email placement never shows what was bought before
    expected = {"complements": {"complements_category", "bought_with"}, "upsell": {"upsell"},
                "new_in_category": {"new_in_category"}, "welcome": {"welcome"}}
    if kind in expected:
        assert set(picks["reason"]) <= expected[kind]


# ------------------------------------------------------------------------------ fast paths = slow paths
@pytest.mark.parametrize("kind", ["complements", "upsell"])
@pytest.mark.parametrize("unpriced", [False, True])
def test_the_cut_rules_history_gives_the_lists_of_the_whole_history(kind: str, unpriced: bool, bundle: Bundle,
                                                                    data: Dataset, now: datetime) -> None:
    """``_rules_history`` hands the rules a fraction of the purchases; the lists must not change.  With
    unpriced purchase lines and items, some customers lack an upsell reference in their candidates'
    categories and need the witness rows."""
    if unpriced:
        every = pl.int_range(pl.len())
        data = replace(
            data,
            interactions=data.interactions.with_columns(
                pl.when(every % 3 == 0).then(None).otherwise(pl.col("price")).alias("price")),
            items=data.items.with_columns(
                pl.when(every % 4 == 0).then(None).otherwise(pl.col("price")).alias("price")),
        )
    campaign = _campaign(strategy=kind, n_picks=4)
    rules = _campaign_rules(campaign, PLACEMENTS)
    ctx = PickContext(bundle, data, now=now, rules=rules, exclude=campaign.exclude)
    ruleset = ctx.index.ruleset(rules)
    ids = data.purchases["customer_id"].unique().sort().to_list()
    item_ids = ctx.items["item_id"]
    for batch, hist in ctx.batches(ids, 700):
        cand, due = candidates(ctx, campaign, batch, hist)
        cand = ctx.with_source_ids(_pool(cand, hist, due, campaign, ctx, checked=kind in CHECKED_STRATEGIES))
        cut = _rules_history(hist, cand, rules, campaign, ctx)
        whole = hist.select("_c", "_i", "ts", "price")
        assert cut.height < whole.height
        lists = [ruleset.apply_codes(cand, batch, n=4, now=now, replenish_due=due, history=h)
                 for h in (cut, whole)]
        assert_frame_equal(lists[0], lists[1])
        # the integer path (the index's codes, no id hashing) gives the lists of the string path
        ids_of = [pl.lit(pl.Series(batch, dtype=pl.String)).gather(pl.col("_c")).alias("customer_id"),
                  pl.lit(item_ids).gather(pl.col("_i")).alias("item_id")]
        named = ruleset.apply(cand.with_columns(ids_of), n=4, now=now, replenish_due=due, customer_ids=batch,
                              history=whole.filter(pl.col("_i").is_not_null()).with_columns(ids_of))
        assert_frame_equal(named, lists[0])


def test_excluded_items_never_come_back_as_bought_with(bundle: Bundle, data: Dataset, now: datetime) -> None:
    """Bought-with candidates get their item ids late; the campaign's item exclusions still apply."""
    strategy = {"kind": "complements", "bought_with": "any"}
    base = _plan(_campaign(strategy=strategy, n_picks=4), bundle, data, now)
    top = base.picks.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False])
    banned = top["item_id"].head(5).to_list()
    run = _plan(_campaign(strategy=strategy, n_picks=4, exclude={"items": banned}), bundle, data, now)
    assert run.picks.height > 0
    assert not set(run.picks["item_id"]) & set(banned)


def test_codes_of_gives_positions_and_null_for_unknown_ids() -> None:
    ids = pl.Series(["b", "c", "a"])
    values = pl.Series(["a", "x", None, "b", "a"])
    assert codes_of(values, ids).to_list() == [2, None, None, 0, 2]
    # a null among the ids takes the join path (an Enum cannot hold nulls); same answer
    assert codes_of(values, pl.Series(["b", None, "a"])).to_list() == [2, None, None, 0, 2]
    assert codes_of(values, pl.Series([], dtype=pl.String)).to_list() == [None] * 5


def test_rank_within_is_polars_rank_over_groups() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    group = rng.integers(0, 400, n)
    score = rng.integers(0, 12, n).astype(np.float64)  # many ties
    score[rng.random(n) < 0.05] = np.nan
    frame = pl.DataFrame({"g": group, "score": score}).with_columns(
        pl.when(pl.int_range(pl.len()) % 50 == 0).then(None).otherwise(pl.col("score")).alias("score"))
    expected = frame.select(pl.col("score").rank("min", descending=True).over("g")).to_series()
    got = rank_within(group, frame["score"])
    assert (got == expected.fill_null(np.iinfo(np.int64).max).to_numpy()).all()
    no_nulls = frame.with_columns(pl.col("score").fill_null(3.0))  # the faster sort without nulls_last
    expected = no_nulls.select(pl.col("score").rank("min", descending=True).over("g")).to_series()
    assert (rank_within(group, no_nulls["score"]) == expected.to_numpy()).all()
    assert len(rank_within(np.zeros(0, dtype=np.int64), pl.Series([], dtype=pl.Float64))) == 0


# ------------------------------------------------------------------------------ dry run, files, CLI
def test_dry_run_writes_the_file_but_nothing_to_the_store(tmp_path: Path, bundle: Bundle, data: Dataset,
                                                          now: datetime, store: Store) -> None:
    out = tmp_path / "out" / "picks.parquet"
    run = _run(_campaign(holdout_share=0.1), bundle, data, now, store, out=out, dry_run=True)
    assert run.picks.height > 0
    assert store.count("send_log") == 0 and store.count("events") == 0
    written = pl.read_parquet(out)
    assert written.columns == list(PICK_COLUMNS) and written.equals(run.picks)
    summary = json.loads(summary_path(out).read_text())
    assert summary["dry_run"] is True and set(summary["excluded"]) == set(EXCLUSION_REASONS)
    assert "logged_rows" not in summary


def _cli() -> typer.Typer:
    """The three commands registered exactly as pipelines/cli.py registers them."""
    from pipelines import campaign

    app = typer.Typer()
    app.add_typer(campaign.app, name="campaign")
    app.command("audience")(campaign.audience_cmd)
    app.command("kpis")(campaign.kpis_cmd)
    return app


def test_cli_run_audience_and_kpis(tmp_path: Path, saved: tuple[str, Path]) -> None:
    tag, _ = saved
    runner, app = CliRunner(), _cli()
    db = tmp_path / "state.db"
    out = tmp_path / "picks.parquet"
    base = ["campaign", "run", str(CAMPAIGNS / "trousers_to_belts_shoes.yaml"), "--model", tag,
            "--out", str(out), "--no-progress"]
    args = [*base, "--store", f"sqlite:///{db}", "--run-id", "cli-1"]
    dry = runner.invoke(app, [*base, "--store", f"sqlite:///{tmp_path / 'none.db'}", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing written to the store" in dry.output and not (tmp_path / "none.db").exists()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "left out: consent" in first.output and "send log:" in first.output
    picks = pl.read_parquet(out)
    assert picks.columns == list(PICK_COLUMNS) and picks.height > 0
    summary = json.loads(summary_path(out).read_text())
    assert summary["run_id"] == "cli-1" and summary["model_version"] == tag
    assert summary["logged_rows"] == Store(f"sqlite:///{db}").count("send_log") > 0
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "already logged (same run id)" in second.output
    assert json.loads(summary_path(out).read_text())["logged_rows"] == 0

    bad = runner.invoke(app, ["campaign", "run", str(tmp_path / "nope.yaml"), "--model", tag,
                              "--out", str(out)])
    assert bad.exit_code == 2 and "campaign config not found" in bad.output

    aud = tmp_path / "belts.csv"
    res = runner.invoke(app, ["audience", "--category", "belts", "--n", "50", "--model", tag,
                              "--out", str(aud)])
    assert res.exit_code == 0, res.output
    listed = pl.read_csv(aud)
    assert listed.height == 50 and listed["rank"].to_list() == list(range(1, 51))

    kpis = runner.invoke(app, ["kpis", "--store", f"sqlite:///{db}"])
    assert kpis.exit_code == 0 and "trousers_to_belts_shoes" in kpis.output


# ------------------------------------------------------------------------------ audience builder
def test_category_propensity_finds_the_next_belt_buyers(bundle: Bundle, data: Dataset) -> None:
    ranked = category_propensity(bundle, "belts")
    ref = bundle.reference_time
    belts = data.items.filter(pl.col("category") == "belts")["item_id"].implode()
    buyers = set(data.purchases.filter((pl.col("ts") > ref) & pl.col("item_id").is_in(belts))["customer_id"])
    base = len(buyers & set(ranked["customer_id"])) / ranked.height
    top = set(ranked.head(100)["customer_id"])
    assert len(top & buyers) / 100 >= 4 * base  # measured ≈ 9× on seed 0
    assert ranked["score"].is_sorted(descending=True)
    # the complement signal: top customers mostly have an unfulfilled trousers/jeans/shirts trigger
    triggers = ranked.head(20)["trigger_category"].is_in(["trousers", "jeans", "shirts"])
    assert triggers.sum() >= 10
    with pytest.raises(UnknownIdError, match="unknown category 'belt'"):
        category_propensity(bundle, "belt")


# ------------------------------------------------------------------------------ KPIs
def test_kpis_on_a_hand_made_event_set_are_exact(store: Store) -> None:
    treated = [f"t{i}" for i in range(10)]
    controls = [f"c{i}" for i in range(5)]
    sends = pl.DataFrame({"customer_id": treated + controls, "item_id": ["x"] * 15, "rank": [1] * 15,
                          "control": [False] * 10 + [True] * 5})
    assert store.log_sends(sends, run_id="k-1", campaign="k1", model_version="v1") == 15
    soon = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(days=1)
    late = soon + timedelta(days=20)

    def ev(cid: str, event: str, source: str | None, price: float | None = None, qty: float = 1.0,
           order: str | None = None, ts: datetime = soon) -> dict[str, object]:
        return {"customer_id": cid, "item_id": "x", "event": event, "ts": ts, "price": price, "quantity": qty,
                "order_id": order, "source": source}

    rows = [ev(c, "impression", "k1") for c in treated]
    rows += [ev(c, "click", "k1") for c in treated[:3]]
    rows += [ev("t0", "purchase", "k1", 10.0, 2.0, "o1"), ev("t1", "purchase", "k1", 5.0, 1.0, "o2")]
    rows += [ev("t5", "purchase", "widget:home", 8.0, 1.0, "o3")]      # any purchase counts for uplift
    rows += [ev("t6", "purchase", "k1", 50.0, 1.0, "o4", ts=late)]     # outside the 14-day window
    rows += [ev("c0", "purchase", None, 7.0, 1.0, "o5")]               # a control buys anyway
    rows += [ev("w1", "impression", "widget:home")] * 4 + [ev("w1", "click", "widget:home")]
    frame = pl.DataFrame(rows, schema={"customer_id": pl.String, "item_id": pl.String, "event": pl.String,
                                       "ts": pl.Datetime("us"), "price": pl.Float64, "quantity": pl.Float32,
                                       "order_id": pl.String, "source": pl.String})
    store.add_events(frame)
    kpis = campaign_kpis(store, window_days=14)
    row = kpis.filter(pl.col("kind") == "campaign").row(0, named=True)
    assert (row["source"], row["model_version"], row["runs"]) == ("k1", "v1", 1)
    assert (row["recipients"], row["controls"], row["impressions"], row["clicks"]) == (10, 5, 10, 3)
    assert row["ctr"] == pytest.approx(0.3)
    assert row["converted"] == 2 and row["conversion"] == pytest.approx(0.2)
    assert row["orders"] == 2 and row["revenue"] == pytest.approx(25.0)
    assert row["revenue_per_recipient"] == pytest.approx(2.5) and row["aov"] == pytest.approx(12.5)
    assert row["treated_purchase_rate"] == pytest.approx(0.3)
    assert row["control_purchase_rate"] == pytest.approx(0.2)
    assert row["uplift"] == pytest.approx(0.1) and row["uplift_relative"] == pytest.approx(0.5)
    widget = kpis.filter(pl.col("kind") == "widget")
    assert widget["source"].to_list() == ["widget:home"]
    assert widget["ctr"].to_list() == [pytest.approx(0.25)] and widget["recipients"].to_list() == [None]
    assert campaign_kpis(store, since=soon + timedelta(days=30)).height == 0


# ------------------------------------------------------------------------------ PostgreSQL
@pytest.mark.postgres
def test_send_log_path_on_postgresql(pg_uri: str, bundle: Bundle, data: Dataset, now: datetime) -> None:
    store = Store(pg_uri)
    try:
        cap = {"max_emails": 1, "per_days": 7}
        first = _run(_campaign(name="pg_a", frequency_cap=cap, holdout_share=0.2), bundle, data, now, store,
                     run_id="pg-1")
        assert first.summary["logged_rows"] == first.picks.height + first.controls.height > 0
        again = _run(_campaign(name="pg_a", frequency_cap=cap, holdout_share=0.2), bundle, data, now, store,
                     run_id="pg-1")
        assert again.summary["logged_rows"] == 0 and again.picks.equals(first.picks)
        other = _plan(_campaign(name="pg_b", frequency_cap=cap), bundle, data, now, store=store)
        assert _excluded(other, "frequency_cap") == _recipients(first)
        log = store.sends()
        assert log.filter(~pl.col("control")).height == first.picks.height
    finally:
        store.close()


# ------------------------------------------------------------------------------ shared index
def test_a_shared_index_gives_the_lists_of_a_fresh_one(saved: tuple[str, Path], data: Dataset,
                                                       now: datetime) -> None:
    """One ``CampaignIndex`` serves every strategy in turn (the weekly job); each list equals a run that
    built its own index on a freshly loaded bundle — including after replenishment/winback folded the
    data's newer purchases into the shared bundle."""
    shared = Bundle.load(saved[1])
    index = CampaignIndex(shared, data)
    for kind in ["replenishment", "complements", "upsell", "new_in_category", "welcome", "winback"]:
        campaign = _campaign(strategy=kind, n_picks=4, holdout_share=0.2)
        warm = _plan(campaign, shared, data, now, index=index)
        cold = _plan(campaign, Bundle.load(saved[1]), data, now)
        assert warm.picks.height > 0, kind
        for part in ("picks", "controls", "excluded"):
            assert_frame_equal(getattr(warm, part), getattr(cold, part))
    other = generate_shop(seed=1).dataset
    with pytest.raises(ConfigError, match="'index' parameter was built for another bundle or data set"):
        _plan(_campaign(), shared, other, now, index=index)


def test_batches_in_threads_give_the_same_picks(bundle: Bundle, data: Dataset, now: datetime,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import recsys.campaigns._batches as batches_module

    monkeypatch.setattr(batches_module, "MIN_PARALLEL_BATCH", 40)  # the synthetic audience is small
    index = CampaignIndex(bundle, data)
    for kind in ["complements", "upsell", "new_in_category", "welcome"]:
        campaign = _campaign(strategy=kind, n_picks=4, holdout_share=0.2)
        one = _plan(campaign, bundle, data, now, index=index)
        three = _plan(campaign, bundle, data, now, index=index, workers=3)
        assert one.picks.height > 0, kind
        for part in ("picks", "controls", "excluded"):
            assert_frame_equal(getattr(one, part), getattr(three, part))
    with pytest.raises(ConfigError, match="'workers' parameter of plan_campaign must be an int in"):
        _plan(_campaign(), bundle, data, now, workers=0)


def test_cli_runs_several_campaigns_in_order_with_caps_across_them(tmp_path: Path,
                                                                    saved: tuple[str, Path]) -> None:
    """One invocation, three campaigns, one loaded bundle and index: each run logs before the next, so
    the frequency cap (2 emails per 7 days) leaves out of the third everyone the first two mailed."""
    tag, _ = saved
    runner, app = CliRunner(), _cli()
    files = []
    for name, strategy in (("first", "welcome"), ("second", "upsell"), ("third", "complements")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"name: {name}\naudience: {{all_customers: true}}\nstrategy: {{kind: {strategy}}}\n"
                        "n_picks: 3\nholdout_share: 0\nfrequency_cap: {max_emails: 2, per_days: 7}\n")
        files.append(str(path))
    db = f"sqlite:///{tmp_path / 'state.db'}"
    out = tmp_path / "picks-{campaign}.parquet"
    res = runner.invoke(app, ["campaign", "run", *files, "--model", tag, "--out", str(out), "--store", db,
                              "--run-id", "week49", "--no-progress", "--workers", "2"])
    assert res.exit_code == 0, res.output
    summaries = {n: json.loads(summary_path(tmp_path / f"picks-{n}.parquet").read_text())
                 for n in ("first", "second", "third")}
    assert [s["run_id"] for s in summaries.values()] == ["week49:first", "week49:second", "week49:third"]
    mailed = [set(pl.read_parquet(tmp_path / f"picks-{n}.parquet")["customer_id"])
              for n in ("first", "second")]
    third = set(pl.read_parquet(tmp_path / "picks-third.parquet")["customer_id"])
    assert mailed[0] & mailed[1] and not third & mailed[0] & mailed[1]
    assert summaries["third"]["excluded"]["frequency_cap"] == len(mailed[0] & mailed[1])

    bad = runner.invoke(app, ["campaign", "run", *files[:2], "--model", tag,
                              "--out", str(tmp_path / "p.parquet")])
    assert bad.exit_code == 2 and "--out" in bad.output and "{campaign}" in bad.output

    # a category typo in the last file stops the call before the first campaign is sent
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: typo\naudience: {all_customers: true}\n"
                    "strategy: {kind: complements, categories: [beltz]}\n")
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    res = runner.invoke(app, ["campaign", "run", files[0], str(typo), "--model", tag, "--store", fresh,
                              "--out", str(tmp_path / "t-{campaign}.parquet"), "--no-progress"])
    assert res.exit_code == 2 and "typo.yaml" in res.output and "strategy.categories" in res.output
    assert Store(fresh).count("send_log") == 0 and not (tmp_path / "t-first.parquet").exists()


@pytest.mark.parametrize("days", [0, 30])
def test_bought_bitmap_and_hash_set_agree_with_the_purchases(
    bundle: Bundle, data: Dataset, now: datetime, days: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import recsys.campaigns._context as context_module

    ctx = PickContext(bundle, data, now=now, rules=PLACEMENTS["email"])
    ids = data.purchases["customer_id"].unique().sort().to_list()[:300]
    (batch, hist), = list(ctx.batches(ids, 400))
    since = now - timedelta(days=days) if days else datetime(1900, 1, 1)
    window = hist.filter(pl.col("_i").is_not_null() & (pl.col("ts") >= since))
    truth = set(zip(window["_c"].to_list(), window["_i"].to_list()))
    rng = np.random.default_rng(1)
    c = np.concatenate([window["_c"].to_numpy(), rng.integers(0, len(batch) + 5, 3000)])
    i = np.concatenate([window["_i"].to_numpy(), rng.integers(0, ctx.n_items, 3000)])
    expected = np.array([(a, b) in truth for a, b in zip(c.tolist(), i.tolist())])
    assert expected.sum() >= window.height > 0
    assert (ctx.bought(c, i, hist, days) == expected).all()
    monkeypatch.setattr(context_module, "MAX_BITMAP_BYTES", 0)  # the hash-set path
    fresh = PickContext(bundle, data, now=now, rules=PLACEMENTS["email"])
    assert (fresh.bought(c, i, hist, days) == expected).all()


def test_cli_segments_once_for_several_segment_audiences(tmp_path: Path, saved: tuple[str, Path]) -> None:
    """Two segment/lifecycle/churn audiences in one call share one segment table: same audiences and
    picks as two separate calls."""
    tag, _ = saved
    runner, app = CliRunner(), _cli()
    files = [str(CAMPAIGNS / "welcome_series.yaml"), str(CAMPAIGNS / "winback_valuable_at_risk.yaml")]
    common = ["--model", tag, "--dry-run", "--no-progress", "--store", f"sqlite:///{tmp_path / 'none.db'}"]
    together = runner.invoke(app, ["campaign", "run", *files, *common, "--run-id", "seg",
                                   "--out", str(tmp_path / "t-{campaign}.csv")])
    assert together.exit_code == 0, together.output
    assert "once for 2 campaigns" in together.output
    for f in files:
        name = Path(f).stem  # (the file names are the campaign names)
        alone = runner.invoke(app, ["campaign", "run", f, *common, "--run-id", f"seg:{name}",
                                    "--out", str(tmp_path / f"a-{name}.csv")])
        assert alone.exit_code == 0, alone.output
        a = json.loads(summary_path(tmp_path / f"a-{name}.csv").read_text())
        t = json.loads(summary_path(tmp_path / f"t-{name}.csv").read_text())
        assert a["audience"] == t["audience"] > 0 and a["excluded"] == t["excluded"]
        assert pl.read_csv(tmp_path / f"a-{name}.csv").drop("campaign").equals(
            pl.read_csv(tmp_path / f"t-{name}.csv").drop("campaign"))


def test_run_campaigns_checks_all_then_runs_in_order_with_caps_across_them(bundle: Bundle, data: Dataset,
                                                                          now: datetime, store: Store,
                                                                          tmp_path: Path) -> None:
    """The library's multi-campaign run (what ``recsys campaign run a.yaml b.yaml`` calls): every campaign
    is checked before the first runs, each logs before the next, run ids get the campaign name."""
    cap = {"max_emails": 1, "per_days": 7}
    first = _campaign(name="first", strategy="upsell", frequency_cap=cap)
    second = _campaign(name="second", strategy="welcome", frequency_cap=cap)
    notes: list[str] = []
    runs = list(run_campaigns([first, second], bundle, data, placements=PLACEMENTS, store=store, now=now,
                              out=tmp_path / "{campaign}.parquet", run_id="w1", notify=notes.append))
    assert [r.run_id for r in runs] == ["w1:first", "w1:second"]
    assert [r.out for r in runs] == [tmp_path / "first.parquet", tmp_path / "second.parquet"]
    assert all(r.out is not None and r.out.exists() for r in runs) and notes[0].startswith("indexed ")
    assert runs[0].picks.height and runs[1].summary["excluded"]["frequency_cap"] > 0
    assert not set(runs[1].picks["customer_id"]) & set(runs[0].picks["customer_id"])

    typo = _campaign(name="typo", strategy={"kind": "complements", "categories": ["beltz"]})
    fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    with pytest.raises(ConfigError, match="strategy.categories"):
        list(run_campaigns([first, typo], bundle, data, placements=PLACEMENTS, store=fresh, now=now,
                           out=tmp_path / "t-{campaign}.parquet"))
    assert fresh.count("send_log") == 0 and not (tmp_path / "t-first.parquet").exists()
    with pytest.raises(ConfigError, match="names must differ"):
        next(run_campaigns([first, first], bundle, data, placements=PLACEMENTS, out=tmp_path / "{campaign}"))
    with pytest.raises(ConfigError, match=r"'out' parameter of run_campaigns must contain \{campaign\}"):
        next(run_campaigns([first, second], bundle, data, placements=PLACEMENTS, out=tmp_path / "p.parquet"))


def test_load_bundle_and_typed_generator_access(saved: tuple[str, Path]) -> None:
    from recsys.bundle import load_bundle
    from recsys.models.buy_again import BuyAgain
    from recsys.models.category_complements import CategoryComplements
    from recsys.models.popularity import Popularity

    tag, path = saved
    version, bundle = load_bundle(tag)
    assert version.tag == tag and version.path == path
    hybrid = bundle.hybrid
    assert isinstance(hybrid.popularity, Popularity) and hybrid.popularity is hybrid.generators["popularity"]
    assert isinstance(hybrid.buy_again, BuyAgain)
    assert isinstance(hybrid.category_complements, CategoryComplements)
    assert hybrid.generator("als", Popularity) is None  # not in this bundle
    with pytest.raises(TypeError, match="'popularity' is a Popularity, not a BuyAgain"):
        hybrid.generator("popularity", BuyAgain)

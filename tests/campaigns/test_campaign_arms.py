"""Campaign experiments: the consenting audience split into strategy or model arms plus a holdout,
deterministically, recorded in the send log and the assignments, and read back with a planted lift."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recsys.bundle import Bundle
from recsys.campaigns import campaign_from_dict, default_now, plan_campaign, run_campaign
from recsys.campaigns._arms import ArmedCampaignRun
from recsys.data.synthetic import generate_shop
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError
from recsys.experiments import ExperimentLog, assign_arms, read_experiment
from recsys.registry import Registry
from recsys.rules import load_placements
from recsys.store import Store

ROOT = Path(__file__).resolve().parents[2]
PLACEMENTS = load_placements(ROOT / "configs" / "placements.yaml")


@pytest.fixture(scope="module")
def data() -> Dataset:
    return generate_shop(seed=0).dataset


@pytest.fixture(scope="module")
def bundle(synthetic_bundle_dir: Path) -> Bundle:
    return Bundle.load(synthetic_bundle_dir)


def _campaign(**kw: Any) -> Any:
    raw: dict[str, Any] = {
        "name": "arms", "audience": {"all_customers": True}, "strategy": "welcome", "n_picks": 3,
        "frequency_cap": None, "resend_window_days": None, "holdout_share": 0.1,
        "experiment": {"name": "welcome-vs-new", "arms": [
            {"name": "welcome"}, {"name": "new", "strategy": {"kind": "new_in_category", "new_within_days": 120}}]},
    }
    raw.update(kw)
    return campaign_from_dict(raw, source="arms.yaml")


def test_arms_split_the_eligible_audience_and_each_arm_gets_its_own_strategy(bundle: Bundle, data: Dataset,
                                                                             tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    now = default_now(data)
    campaign = _campaign()
    run = run_campaign(campaign, bundle, data, placements=PLACEMENTS, store=store, now=now, run_id="w-1",
                       model_version="crosssell:test")
    assert isinstance(run, ArmedCampaignRun)
    a = run.assignments
    eligible = a["customer_id"].to_list()
    assert len(eligible) == len(set(eligible)) > 1000
    # deterministic: the hash of (experiment, customer) decides, whatever the run id
    groups = [("holdout", 0.1), ("welcome", 0.45), ("new", 0.45)]
    assert a["arm"].to_list() == assign_arms(eligible, groups, salt="welcome-vs-new")
    shares = {g: a.filter(pl.col("arm") == g).height / a.height for g, _ in groups}
    assert shares == {"holdout": pytest.approx(0.1, abs=0.03), "welcome": pytest.approx(0.45, abs=0.04),
                      "new": pytest.approx(0.45, abs=0.04)}
    # each arm's customers get exactly what a plain run of that arm's strategy gives them
    for arm, strategy in (("welcome", campaign.strategy), ("new", campaign.experiment.arms[1].strategy)):
        plain = plan_campaign(campaign.model_copy(update={"experiment": None, "holdout_share": 0.0,
                                                          "strategy": strategy}),
                              bundle, data, placements=PLACEMENTS, now=now, run_id="w-1")
        mine = a.filter(pl.col("arm") == arm)["customer_id"].implode()
        got = run.picks.filter(pl.col("customer_id").is_in(mine)).sort("customer_id", "rank")
        want = plain.picks.filter(pl.col("customer_id").is_in(mine)).sort("customer_id", "rank")
        assert_frame_equal(got, want, check_exact=False)  # scores: summation order may differ in the last bit
        assert run.summary["experiment"]["arms"][arm]["strategy"] == strategy.kind
    # the holdout is not emailed, logged as control; every audience member is accounted for exactly once
    held = set(a.filter(pl.col("arm") == "holdout")["customer_id"])
    assert not held & set(run.picks["customer_id"]) and set(run.controls["customer_id"]) <= held
    log = store.sends()
    assert set(log.filter(pl.col("control"))["customer_id"]) == set(run.controls["customer_id"])
    assert set(log.filter(~pl.col("control"))["customer_id"]) == set(run.picks["customer_id"])
    assert run.summary["recipients"] + sum(run.summary["excluded"].values()) == run.summary["audience"]
    stored = ExperimentLog(store).assignments("welcome-vs-new")
    assert stored.height == a.height and set(stored["run_id"]) == {"w-1"}
    assert stored.filter(pl.col("emailed"))["customer_id"].sort().to_list() == \
        sorted(set(run.picks["customer_id"]))
    # sticky across runs of the experiment; a re-run of the same run id logs nothing twice
    again = run_campaign(campaign, bundle, data, placements=PLACEMENTS, store=store, now=now, run_id="w-2",
                         model_version="crosssell:test", dry_run=True)
    assert again.assignments["arm"].to_list() == a["arm"].to_list()
    before = (store.count("send_log"), ExperimentLog(store).count("exp_assignments"))
    run_campaign(campaign, bundle, data, placements=PLACEMENTS, store=store, now=now, run_id="w-1",
                 model_version="crosssell:test")
    assert (store.count("send_log"), ExperimentLog(store).count("exp_assignments")) == before


def test_model_arms_log_their_own_model_version(bundle: Bundle, data: Dataset, synthetic_bundle_dir: Path,
                                                tmp_path: Path) -> None:
    other = Registry().save(bundle.write_into, metadata={}, version="arms-v2")
    campaign = _campaign(holdout_share=0.0, experiment={"name": "models", "arms": [
        {"name": "current"}, {"name": "next", "model": other}]})
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    run = run_campaign(campaign, bundle, data, placements=PLACEMENTS, store=store, now=default_now(data),
                       run_id="m-1", model_version="crosssell:current")
    by_arm = run.assignments.group_by("arm").agg(pl.col("model_version").unique())
    assert dict(by_arm.iter_rows()) == {"current": ["crosssell:current"], "next": [other]}
    versions = store.sends().join(run.assignments, on="customer_id").select("arm", "model_version").unique()
    assert sorted(versions.rows()) == [("current", "crosssell:current"), ("next", other)]


def test_a_planted_lift_in_one_arm_is_read_back(bundle: Bundle, data: Dataset, tmp_path: Path) -> None:
    """After the send, customers of arm 'new' buy with 24 %, 'welcome' 12 %, holdout 4 % (planted): the
    read-out calls 'new' better than the control arm 'welcome' on conversion, and the holdout worse."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    run = run_campaign(_campaign(holdout_share=0.3), bundle, data, placements=PLACEMENTS, store=store,
                       now=default_now(data), run_id="p-1", model_version="crosssell:test")
    rng = np.random.default_rng(5)
    sent = datetime.now(timezone.utc).replace(tzinfo=None)
    p = {"holdout": 0.04, "welcome": 0.12, "new": 0.24}
    rows = [{"customer_id": c, "item_id": "I00001", "event": "purchase", "ts": sent + timedelta(days=2),
             "quantity": 1.0, "price": 30.0, "order_id": f"o-{c}"}
            for c, arm in run.assignments.select("customer_id", "arm").iter_rows() if rng.random() < p[arm]]
    store.add_events(pl.DataFrame(rows))
    result = read_experiment(store, "welcome-vs-new")
    assert result.kind == "campaign" and result.readout.control == "welcome"
    assert result.readout.arms == ["welcome", "new", "holdout"]
    assert result.readout.decide("new").wins
    conv = result.readout.comparisons[("holdout", "conversion")]
    assert conv.verdict == "control better"
    # purchases after the 14-day window do not count
    before = result.readout.comparisons[("holdout", "conversion")].treatment.value
    held = run.assignments.filter(pl.col("arm") == "holdout")["customer_id"].to_list()
    store.add_events(pl.DataFrame([{"customer_id": c, "item_id": "I00002", "event": "purchase",
                                    "ts": sent + timedelta(days=30), "quantity": 1.0, "price": 9.0} for c in held]))
    after = read_experiment(store, "welcome-vs-new").readout.comparisons[("holdout", "conversion")]
    assert after.treatment.value == before


@pytest.mark.parametrize(("experiment", "holdout", "field"), [
    ({"name": "x", "arms": [{"name": "a"}, {"name": "a"}]}, 0.1, "unique"),
    ({"name": "x", "arms": [{"name": "holdout"}]}, 0.1, "holdout"),
    ({"name": "x", "arms": [{"name": "a"}]}, 0.0, "two arms"),
    ({"name": "x", "arms": [{"name": "a"}, {"name": "b"}], "control": "c"}, 0.1, "control"),
    ({"name": "x", "arms": [{"name": "a", "strategy": {"kind": "upsell", "due_ratio": [1, 2]}}]}, 0.1, "due_ratio"),
])
def test_bad_experiment_sections_name_the_field(experiment: dict, holdout: float, field: str) -> None:
    with pytest.raises(ConfigError, match=field) as err:
        _campaign(experiment=experiment, holdout_share=holdout)
    assert "arms.yaml" in str(err.value) and "experiment" in str(err.value)

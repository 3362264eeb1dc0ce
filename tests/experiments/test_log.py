"""The experiment log on a real SQLite store: attribution rules, units, a planted lift read back, erasure."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys.exceptions import ConfigError
from recsys.experiments import ExperimentLog, assign_arms, read_experiment
from recsys.store import Store

T0 = datetime(2025, 3, 1, 12, 0, 0)
HOUR = timedelta(hours=1)


def _events(rows: list[dict]) -> pl.DataFrame:
    base = {"customer_id": None, "session_id": None, "recommendation_id": None, "item_id": None, "event": "click",
            "quantity": 1.0, "price": None, "order_id": None, "ts": None}
    return pl.DataFrame([{**base, **r} for r in rows], schema={
        "customer_id": pl.String, "session_id": pl.String, "recommendation_id": pl.String, "item_id": pl.String,
        "event": pl.String, "quantity": pl.Float64, "price": pl.Float64, "order_id": pl.String,
        "ts": pl.Datetime("us")})


@pytest.fixture()
def log(tmp_path: Path) -> ExperimentLog:
    log = ExperimentLog(Store(f"sqlite:///{tmp_path / 'state.db'}"))
    log.register("exp", kind="service", config={"min_customers": 2, "min_events": 1, "attribution_hours": 24})
    return log


def test_events_are_attributed_to_the_arm_that_showed_the_item(log: ExperimentLog) -> None:
    log.log_exposure(experiment="exp", rec_id="r1", arm="control", model_version="m:a", customer_id="C1",
                     session_id=None, subject="C1", placement="for_you", item_ids=["I1", "I2"], shown_at=T0)
    log.log_exposure(experiment="exp", rec_id="r2", arm="challenger", model_version="m:b", customer_id=None,
                     session_id="S9", subject="session:S9", placement="home", item_ids=["I3"], shown_at=T0)
    w = timedelta(hours=24)
    n = log.attribute(_events([
        {"customer_id": "C1", "item_id": "I1", "event": "click"},                        # shown: attributed
        {"customer_id": "C1", "item_id": "I9", "event": "click"},                        # never shown: not
        {"customer_id": "C1", "item_id": "I2", "event": "purchase", "price": 10.0, "quantity": 2.0, "order_id": "o1"},
        {"customer_id": "X7", "session_id": "S9", "item_id": "I3", "event": "impression"},  # by session
        {"customer_id": "C1", "item_id": "I1", "event": "cart"},                         # not an outcome type
    ]), window=w, received_at=T0 + HOUR)
    assert n == 3
    out = log.outcomes("exp").sort("event")
    assert out.select("arm", "event", "subject").rows() == [
        ("control", "click", "C1"), ("challenger", "impression", "session:S9"), ("control", "purchase", "C1")]
    # after the window: nothing
    assert log.attribute(_events([{"customer_id": "C1", "item_id": "I1"}]), window=w, received_at=T0 + 25 * HOUR) == 0
    # a recommendation id names the exposure even for another customer id (a login mid-session)
    assert log.attribute(_events([{"customer_id": "C2", "recommendation_id": "r2", "item_id": "I3"}]),
                         window=w, received_at=T0 + 2 * HOUR) == 1
    units, impressions = log.units("exp")
    assert impressions == "impression events"
    row = units.filter(pl.col("subject") == "C1").row(0, named=True)
    assert (row["arm"], row["clicks"], row["orders"], row["revenue"], row["converted"], row["model_version"]) == \
        ("control", 1, 1, 20.0, True, "m:a")


def test_a_planted_lift_is_read_back_from_the_store_and_a_null_is_not(tmp_path: Path) -> None:
    """4,000 simulated customers through the log (exposures, posted events, attribution, units, read-out):
    the challenger's planted +40 % purchase rate is detected with the right sign; with no lift it is not."""
    def run(name: str, lift: float, seed: int) -> object:
        store = Store("sqlite:///:memory:")  # a real SQLite database, without 10k fsyncs
        log = ExperimentLog(store)
        log.register(name, kind="service", config={"primary_metric": "conversion"})
        rng = np.random.default_rng(seed)
        ids = [f"C{i:05d}" for i in range(4000)]
        arms = assign_arms(ids, [("control", 0.5), ("challenger", 0.5)], salt=name)
        events = []
        for k, (cid, arm) in enumerate(zip(ids, arms, strict=True)):
            items = [f"I{(k + j) % 300:03d}" for j in range(4)]
            log.log_exposure(experiment=name, rec_id=f"r{k}", arm=arm, model_version=f"m:{arm}", customer_id=cid,
                             session_id=None, subject=cid, placement="for_you", item_ids=items, shown_at=T0)
            p = 0.10 * (1 + lift if arm == "challenger" else 1)
            for item in items:
                events.append({"customer_id": cid, "item_id": item, "event": "impression"})
                if rng.random() < 0.08:
                    events.append({"customer_id": cid, "item_id": item, "event": "click"})
            if rng.random() < p:
                events.append({"customer_id": cid, "item_id": items[0], "event": "purchase", "price": 30.0,
                               "order_id": f"o{k}"})
        log.attribute(_events(events), window=timedelta(hours=24), received_at=T0 + HOUR)
        return read_experiment(store, name)

    win = run("lift", 0.4, 1)
    assert win.readout.decide("challenger").wins, win.readout.decide("challenger").reason
    conv = win.readout.table.filter((pl.col("arm") == "challenger") & (pl.col("metric") == "conversion")).row(
        0, named=True)
    assert conv["diff_low"] < 0.04 < conv["diff_high"]  # the planted difference: 0.14 - 0.10
    null = run("null", 0.0, 2)
    assert not null.readout.decide("challenger").wins


def test_unknown_experiment_and_control_are_named(log: ExperimentLog) -> None:
    with pytest.raises(ConfigError, match="'nope'.*known: exp"):
        read_experiment(log.store, "nope")
    with pytest.raises(ConfigError, match="control"):
        read_experiment(log.store, "exp", control="treatment")
    result = read_experiment(log.store, "exp")  # no exposures yet: every comparison too small to call
    assert set(result.readout.table["verdict"]) <= {"control", "too small to call"}


def test_erasure_removes_exposures_outcomes_and_assignments(log: ExperimentLog) -> None:
    from recsys.privacy import erase_everywhere

    log.log_exposure(experiment="exp", rec_id="r1", arm="control", model_version=None, customer_id="C1",
                     session_id=None, subject="C1", placement=None, item_ids=["I1"], shown_at=T0)
    log.attribute(_events([{"customer_id": "C1", "item_id": "I1"}]), window=timedelta(hours=1),
                  received_at=T0 + timedelta(minutes=5))
    log.log_assignments(pl.DataFrame({"customer_id": ["C1"], "arm": ["a"], "strategy": ["upsell"],
                                      "model_version": [None], "emailed": [True]}),
                        experiment="camp", campaign="c", run_id="r")
    report = erase_everywhere(["C1"], log.store)
    assert report.store_rows["exp_exposures"] == 1 and report.store_rows["exp_outcomes"] == 1
    assert report.store_rows["exp_assignments"] == 1
    assert [log.count(t) for t in ("exp_exposures", "exp_outcomes", "exp_assignments")] == [0, 0, 0]
    assert "C1" not in report.unknown

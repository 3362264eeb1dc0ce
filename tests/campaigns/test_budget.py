"""A campaign budget: exactly N recipients, the highest expected value first, controls from the same band;
and the offline check that expected value beats a random N."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from recsys.bundle import Bundle
from recsys.campaigns import campaign_from_dict, default_now, plan_campaign
from recsys.campaigns._budget import budget_backtest, expected_value
from recsys.data.synthetic import generate_shop
from recsys.exceptions import ConfigError
from recsys.rules import load_placements

ROOT = Path(__file__).resolve().parents[2]


def _campaign(**kw: object):  # type: ignore[no-untyped-def]
    raw: dict[str, object] = {"name": "budgeted", "audience": {"all_customers": True}, "strategy": "complements",
                              "n_picks": 3, "frequency_cap": None, "resend_window_days": None,
                              "holdout_share": 0.1}
    raw.update(kw)
    return campaign_from_dict(raw, source="test.yaml")


def test_budget_sends_to_the_n_with_the_highest_expected_value(synthetic_bundle_dir: Path) -> None:
    data = generate_shop(seed=0).dataset
    now = default_now(data)
    placements = load_placements(ROOT / "configs" / "placements.yaml")
    bundle = Bundle.load(synthetic_bundle_dir)
    full = plan_campaign(_campaign(), bundle, data, placements=placements, now=now)
    run = plan_campaign(_campaign(budget=150), bundle, data, placements=placements, now=now)
    recipients = set(run.picks["customer_id"])
    controls = set(run.controls["customer_id"])
    over = set(run.excluded.filter(pl.col("reason") == "over_budget")["customer_id"])
    assert len(recipients) == 150 and run.summary["excluded"]["over_budget"] == len(over) > 0
    # the same eligible customers with picks, only cut: recipients ∪ controls ∪ over budget
    assert recipients | controls | over == set(full.picks["customer_id"]) | set(full.controls["customer_id"])
    ev = dict(expected_value(data, now=now).select("customer_id", "expected_value").iter_rows())
    worst_in = min(ev.get(c, 0.0) for c in recipients | controls)
    best_out = max(ev.get(c, 0.0) for c in over)
    assert worst_in >= best_out
    assert controls <= set(full.controls["customer_id"])  # the holdout draw itself is unchanged


def test_budget_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="budget"):
        _campaign(budget=0)
    with pytest.raises(ConfigError, match="budget and experiment"):
        _campaign(budget=10, experiment={"name": "x", "arms": [{"name": "a"}, {"name": "b"}]})


def test_expected_value_targets_more_revenue_than_random() -> None:
    data = generate_shop(seed=0).dataset
    end = data.purchases["ts"].max()
    r = budget_backtest(data, cutoff=end - timedelta(days=30), n=200, draws=100)
    assert r["ev_revenue"] > r["random_revenue_p95"] and r["ev_buyers"] > r["random_buyers"]
